# Front door. `make demo` and `make test` work on a fresh Debian 12 machine as root.
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
# `make fuzz`: seconds each fuzz target runs.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = fuzz_api fuzz_config fuzz_gpusim_state
# What the ThreadSanitizer build needs: the tests labelled tsan and the programs they run.
TSAN_TARGETS = tsan_daemon tsan_region tsan_interpose
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
CTEST_ARGS ?=

.PHONY: all deps build asan tsan fuzz test test-fast demo bench install format format-check clean gpu-bundle

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja: CMakeLists.txt
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGM_WERROR=ON $(CMAKE_ARGS)

$(ASAN_BUILD)/build.ninja: CMakeLists.txt
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DGM_WERROR=ON -DGM_SANITIZE=ON $(CMAKE_ARGS)

$(TSAN_BUILD)/build.ninja: CMakeLists.txt
	cmake -S . -B $(TSAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGM_WERROR=ON -DGM_TSAN=ON $(CMAKE_ARGS)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD) -j $(JOBS)

asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD) -j $(JOBS)

tsan: deps $(TSAN_BUILD)/build.ninja
	ninja -C $(TSAN_BUILD) -j $(JOBS) $(TSAN_TARGETS)

# The ordinary build's tests, the ThreadSanitizer build's (label tsan), then the AddressSanitizer
# + UBSan build's; ctest's summary closes each part, the last one the whole output.
$(FUZZ_BUILD)/build.ninja: CMakeLists.txt
	CC=clang cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGM_FUZZ=ON $(CMAKE_ARGS)

# Each fuzz target for FUZZ_SECONDS, one process: it starts from tests/fuzz/corpus/TARGET/ (read
# only) and keeps what it finds in $(FUZZ_BUILD)/corpus/TARGET/; a crash leaves its input in
# $(FUZZ_BUILD)/artifacts/ and stops the run.
fuzz:
	@GM_FUZZ_DEPS=1 scripts/install-deps.sh
	@$(MAKE) --no-print-directory $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD) -j $(JOBS) $(FUZZ_TARGETS)
	@mkdir -p $(FUZZ_BUILD)/artifacts
	@for t in $(FUZZ_TARGETS); do \
		echo "== $$t ($(FUZZ_SECONDS) s) =="; \
		mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
		ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
		$(FUZZ_BUILD)/tests/$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_BUILD)/artifacts/$$t- \
			$(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t || exit 1; \
	done

test: build asan tsan format-check
	@echo "== tests (RelWithDebInfo build) =="
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)
	@echo "== tests (ThreadSanitizer build: the daemon's threads, the region, the interposer) =="
	cd $(TSAN_BUILD) && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
		setarch -R ctest --output-on-failure -j $(JOBS) -L tsan $(CTEST_ARGS)
	@echo "== tests (AddressSanitizer + UBSan build) =="
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
		ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

demo: build
	@scripts/demo.sh $(BUILD)

bench: build
	@bench/run.sh $(BUILD)

# `make install [PREFIX=/usr/local] [DESTDIR=STAGE]`: the programs, the systemd unit, the default
# configuration, the manual pages and the completions (docs/install.md).
PREFIX ?= /usr/local
install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix $(PREFIX)

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

format-check:
	@git ls-files '*.c' '*.h' | xargs -r clang-format --dry-run --Werror

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD)

# One archive for a machine with an NVIDIA driver and none of our packages (docs/gpu-check.md).
gpu-bundle: deps $(BUILD)/build.ninja
	ninja -C $(BUILD) -j $(JOBS) gpu-bundle
