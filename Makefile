# ncpflash - one readable Makefile (no autotools).  `make help` lists targets.
PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
CFLAGS  ?= -O2 -g
PKGS     = lua5.4 libserialport zlib liblzma libcrypto sqlite3 libmicrohttpd
WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wno-unused-parameter
B       ?= build
# version: git describe in a checkout; the VERSION file in a tarball
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || cat VERSION 2>/dev/null || echo unknown)
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(PKG_CFLAGS) -Isrc \
             -DNCP_VERSION='"$(VERSION)"'
LIBS     = $(PKG_LIBS) -lm

SRC      = $(filter-out src/main.c,$(wildcard src/*.c))
OBJ      = $(SRC:src/%.c=$(B)/obj/%.o)
SIM_SRC  = $(wildcard tests/emulator/*.c)
SIM_OBJ  = $(SIM_SRC:tests/emulator/%.c=$(B)/obj/sim/%.o)
TEST_BIN = $(patsubst tests/c/%.c,$(B)/tests/%,$(wildcard tests/c/test_*.c))
PEER_BIN = $(patsubst tests/peer/%.c,$(B)/tests/%,$(wildcard tests/peer/*.c))
EMBED    = $(sort $(wildcard lua/ncpflash/*.lua lua/ncpflash/*/*.lua recipes/*.lua recipes/*/*.lua))
# the station dashboard (HTML/CSS/JS), embedded like the Lua files
WEB      = $(sort $(wildcard web/station/*.html web/station/*.css web/station/*.js))
LUA_ALL  = $(EMBED) $(wildcard tools/*.lua tests/*.lua tests/lib/*.lua tests/lua/*.lua tests/fuzz/*.lua)
DEPS_OK  = $(B)/.deps-ok
RUN      = NCPFLASH_BUILD=$(B) $(B)/ncpflash run tests/run.lua

.PHONY: all test demo bench lint install clean deps help fuzz fuzz-bins check-asan soak
all: $(B)/ncpflash $(B)/ncpsim $(TEST_BIN) $(PEER_BIN)

help:
	@echo "make            build build/ncpflash and build/ncpsim (installs packages when root)"
	@echo "make demo       start ncpsim, flash a synthetic image set, show info, stop"
	@echo "make test       build and run every test (ends with 'N passed, N failed')"
	@echo "make bench      realtime benchmarks against ncpsim"
	@echo "make lint       luacheck + compiler warnings as errors"
	@echo "make fuzz       libFuzzer targets, FUZZ_SECONDS each (default 60; clang-14)"
	@echo "make check-asan the test suite under ASan + UBSan (build-asan)"
	@echo "make soak       SOAK_N (default 200) seeded fault flashes against ncpsim"
	@echo "make deps       install the Debian packages the build needs"
	@echo "make install    install to \$$(DESTDIR)\$$(PREFIX) (default /usr/local)"

deps:
	@sh tools/deps.sh install

$(DEPS_OK): tools/deps.sh
	@mkdir -p $(B)
	@sh tools/deps.sh check-or-install
	@touch $@

$(B)/embed: tools/embed.c | $(DEPS_OK)
	@mkdir -p $(B)
	@echo "  CC      $@"
	@$(CC) -O1 -o $@ $<

$(B)/gen/embedded.c: $(B)/embed $(EMBED) $(WEB)
	@mkdir -p $(B)/gen
	@echo "  EMBED   $(words $(EMBED)) Lua files, $(words $(WEB)) web files"
	@$(B)/embed $@ . $(EMBED) $(WEB)

$(B)/obj/%.o: src/%.c src/*.h | $(DEPS_OK)
	@mkdir -p $(B)/obj
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/obj/embedded.o: $(B)/gen/embedded.c src/embedded.h
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/obj/sim/%.o: tests/emulator/%.c $(wildcard tests/emulator/*.h) | $(DEPS_OK)
	@mkdir -p $(B)/obj/sim
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -Itests/emulator -c -o $@ $<

$(B)/ncpflash: $(B)/obj/main.o $(OBJ) $(B)/obj/embedded.o
	@echo "  LD      $@"
	@$(CC) -o $@ $^ $(LIBS)

$(B)/ncpsim: $(SIM_OBJ)
	@echo "  LD      $@"
	@$(CC) -o $@ $^ $(LIBS)

$(B)/tests/%: tests/c/%.c $(OBJ) $(B)/obj/embedded.o
	@mkdir -p $(B)/tests
	@echo "  CC      $@"
	@$(CC) $(ALL_CFLAGS) -o $@ $(filter-out tests/fuzz/%,$^) $(LIBS)

# the fuzz regression replay #includes the fuzz targets
$(B)/tests/test_fuzz_regress: $(wildcard tests/fuzz/*.c tests/fuzz/*.h)

$(B)/tests/%: tests/peer/%.c | $(DEPS_OK)
	@mkdir -p $(B)/tests
	@echo "  CC      $@"
	@$(CC) $(ALL_CFLAGS) -o $@ $< $(LIBS)

test: all
	@sh tools/deps.sh lab || echo "make test: the labgrid driver test will be skipped (no python3-labgrid)"
	@$(RUN)

# ---- hardening (issue 9): fuzzing, sanitizers, fault soak -----------------
FUZZ_B       ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS  = isp rfc2217 ini bfpt bfnp efuse ota
SAN_FLAGS     = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
ASAN_B       ?= build-asan
SOAK_N       ?= 200

fuzz:
	@sh tools/deps.sh fuzz
	@$(MAKE) --no-print-directory B=$(FUZZ_B) CC=clang-14 \
		CFLAGS="-O1 -g $(SAN_FLAGS) -fsanitize=fuzzer-no-link" fuzz-bins
	@sh tools/fuzz.sh $(FUZZ_B) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-bins: $(FUZZ_TARGETS:%=$(B)/fuzz/fuzz_%)

$(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_lua.c tests/fuzz/fuzz.h $(OBJ) $(B)/obj/embedded.o
	@mkdir -p $(B)/fuzz
	@echo "  FUZZ    $@"
	@$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer -o $@ $(filter %.c %.o,$^) $(LIBS)

# the whole suite with ASan + UBSan (ncpflash, ncpsim and the C tests)
check-asan:
	@$(MAKE) --no-print-directory B=$(ASAN_B) CFLAGS="-O1 -g $(SAN_FLAGS)" \
		LIBS="$(PKG_LIBS) -lm $(SAN_FLAGS)" all
	@rm -rf $(ASAN_B)/san && mkdir -p $(ASAN_B)/san
	@ASAN_OPTIONS=detect_leaks=1:exitcode=99:log_path=$(CURDIR)/$(ASAN_B)/san/asan \
	 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=99:log_path=$(CURDIR)/$(ASAN_B)/san/ubsan \
	 NCPFLASH_BUILD=$(ASAN_B) $(ASAN_B)/ncpflash run tests/run.lua $(TEST_ARGS)
	@# every report of every process (ncpflash, ncpsim, C tests) lands in $(ASAN_B)/san
	@if [ -n "$$(ls $(ASAN_B)/san)" ]; then echo "check-asan: sanitizer reports:"; \
		head -40 $(ASAN_B)/san/*; exit 1; fi; echo "check-asan: no sanitizer reports"

# SOAK_N seeded fault runs against ncpsim (tests/soak.lua; SOAK_SEED, SOAK_ARGS)
soak: all
	@NCPFLASH_BUILD=$(B) SOAK_N=$(SOAK_N) $(B)/ncpflash run tests/soak.lua $(SOAK_ARGS)

demo: all
	@$(B)/ncpflash run tools/demo.lua

bench: all
	@NCPFLASH_BUILD=$(B) $(B)/ncpflash run tests/bench.lua $(BENCH_ARGS)

lint: $(DEPS_OK)
	luacheck -q $(LUA_ALL)
	@$(MAKE) --no-print-directory all

install: $(B)/ncpflash
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(B)/ncpflash $(DESTDIR)$(PREFIX)/bin/ncpflash

clean:
	rm -rf $(B)
