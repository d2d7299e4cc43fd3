# Run by `cmake --install` (install(SCRIPT) in dist/CMakeLists.txt) with GM_SOURCE_DIR,
# GM_BINARY_DIR, GM_SBINDIR, GM_SYSCONFDIR and GM_MANDIR set: installs the files that name
# installed paths, filled in for the prefix of this installation. DESTDIR is honoured by
# file(INSTALL).
include("${GM_SOURCE_DIR}/dist/paths.cmake")
gm_installed_paths()
set(_gm_out "${GM_BINARY_DIR}/dist/installed")
file(MAKE_DIRECTORY "${_gm_out}")
configure_file("${GM_SOURCE_DIR}/dist/gpumuxd.service.in" "${_gm_out}/gpumuxd.service" @ONLY)
configure_file("${GM_BINARY_DIR}/dist/gpumuxd.8.in" "${_gm_out}/gpumuxd.8" @ONLY)
file(INSTALL DESTINATION "${GM_UNIT_DIR}" TYPE FILE FILES "${_gm_out}/gpumuxd.service")
file(INSTALL DESTINATION "${GM_MAN8_DIR}" TYPE FILE FILES "${_gm_out}/gpumuxd.8")
# The configuration is the administrator's once installed: an existing file is kept.
if(EXISTS "$ENV{DESTDIR}${GM_CONFIG_FILE}")
  message(STATUS "Keeping: $ENV{DESTDIR}${GM_CONFIG_FILE} (the default is "
                 "${GM_BINARY_DIR}/dist/gpumuxd.yaml)")
else()
  file(INSTALL DESTINATION "${GM_CONFIG_DIR}" TYPE FILE FILES "${GM_BINARY_DIR}/dist/gpumuxd.yaml")
endif()
