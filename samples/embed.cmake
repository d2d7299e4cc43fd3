# Turns a text file into a C source that defines it as a NUL-terminated byte array, so that the
# binary carries its PTX and needs no file next to it at run time. Bytes rather than a string
# literal: no escaping to get wrong, and no limit on literal length.
#   cmake -DIN=nbody.ptx -DOUT=nbody_ptx.c -DSYMBOL=gm_sample_ptx -DHEADER=ptx.h -P embed.cmake
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" nhex)
math(EXPR nbytes "${nhex} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f])"
       "\\1\n" hex "${hex}")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
get_filename_component(name "${IN}" NAME)
file(WRITE "${OUT}.tmp"
  "/* Generated from ${name} at build time; edit that file instead. */\n"
  "#include \"${HEADER}\"\n\n"
  "const unsigned char ${SYMBOL}[] = {\n${hex}\n0x00};\n"
  "const size_t ${SYMBOL}_len = ${nbytes};\n")
# Only a changed file touches the output, so that an unchanged PTX recompiles nothing.
execute_process(COMMAND "${CMAKE_COMMAND}" -E copy_if_different "${OUT}.tmp" "${OUT}")
file(REMOVE "${OUT}.tmp")
