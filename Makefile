# bandage: see README.md. `make deps` installs what the build and tests need
# (Debian), `make check` runs every test, `make bench` the side-by-side table.
SHELL   := /bin/bash
CC      ?= cc
VERSION := $(shell cat VERSION)
BUILD   := build
PKGS    := libpq libcurl libcrypto jansson
WARN    := -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE
# One include root: a file names another folder's header as "db/query.h",
# its own folder's and the leaf helpers' by name alone.
INC     := -Ientrypoint
CFLAGS  ?= -O2 -g
ALL_CFLAGS = $(WARN) $(INC) $(CFLAGS) -DBANDAGE_VERSION='"$(VERSION)"' \
             $(shell pkg-config --cflags $(PKGS))
# libpg_query (PostgreSQL's parser; Debian's libpg-query-dev has no .pc file).
LIBS    := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpg_query
SANITIZE := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
PYTEST  := /usr/bin/python3 -m pytest
PYTEST_ARGS ?= -q

SRC      := $(wildcard entrypoint/*.c entrypoint/*/*.c)
LIB_SRC  := $(filter-out entrypoint/main.c,$(SRC))
HDR      := $(wildcard entrypoint/*.h entrypoint/*/*.h tests/unit/*.h)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNITS    := $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRC))
ASAN_UNITS := $(patsubst tests/unit/%.c,$(BUILD)/asan/unit/%,$(UNIT_SRC))

.PHONY: all check unit integration asan-check clang-check deps clean distclean bench demo fuzz readme-check \
        check-pg-versions
all: $(BUILD)/bandage

OBJ      := $(patsubst entrypoint/%.c,$(BUILD)/obj/%.o,$(LIB_SRC))
ASAN_OBJ := $(patsubst entrypoint/%.c,$(BUILD)/asan/obj/%.o,$(LIB_SRC))

$(BUILD)/obj/%.o: entrypoint/%.c $(HDR) VERSION Makefile
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/asan/obj/%.o: entrypoint/%.c $(HDR) VERSION Makefile
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(SANITIZE) -c -o $@ $<

$(BUILD)/bandage: $(BUILD)/obj/main.o $(OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/asan/bandage: $(BUILD)/asan/obj/main.o $(ASAN_OBJ)
	$(CC) $(CFLAGS) $(SANITIZE) -o $@ $^ $(LIBS)

$(BUILD)/unit/%: tests/unit/%.c $(OBJ) $(HDR) Makefile
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(OBJ) $(LIBS) -lcmocka

$(BUILD)/asan/unit/%: tests/unit/%.c $(ASAN_OBJ) $(HDR) Makefile
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(SANITIZE) -o $@ $< $(ASAN_OBJ) $(LIBS) -lcmocka

unit: $(UNITS)
	@for t in $(UNITS); do echo "== $$t"; $$t 2>&1 | grep -Ev '^\[ (RUN|      OK) ' ; [ $${PIPESTATUS[0]} -eq 0 ] || exit 1; done

integration: $(BUILD)/bandage
	BANDAGE=$(abspath $(BUILD)/bandage) $(PYTEST) $(PYTEST_ARGS) tests/integration

# The same unit and integration tests, under AddressSanitizer + UBSan.
asan-check: $(BUILD)/asan/bandage $(ASAN_UNITS)
	@for t in $(ASAN_UNITS); do echo "== $$t"; $$t 2>&1 | grep -Ev '^\[ (RUN|      OK) ' ; [ $${PIPESTATUS[0]} -eq 0 ] || exit 1; done
	BANDAGE=$(abspath $(BUILD)/asan/bandage) BANDAGE_SANITIZED=1 \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99 \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  $(PYTEST) $(PYTEST_ARGS) tests/integration

readme-check: $(BUILD)/bandage
	scripts/check-readme.sh

# The same warnings-as-errors build and unit tests with clang.
clang-check:
	$(MAKE) --no-print-directory BUILD=$(BUILD)/clang CC=clang $(BUILD)/clang/bandage unit

check: all unit clang-check readme-check integration asan-check

deps:
	bash .ci/deps

# The database suites on the other supported PostgreSQL majors (README,
# "PostgreSQL versions"): servers from scripts/pg-servers.sh (npm's, cached
# in build/pg-servers), one major at a time; 15, Debian's, is make check's.
# Every major is run even when one fails; the summary names the failures.
PG_VERSIONS ?= 14 16 17 18
PG_SUITES   ?= test_wait.py test_worker.py test_reset.py test_reset_safety.py \
               test_reset_scope.py test_undo.py test_migrate.py test_pg_versions.py
check-pg-versions: $(BUILD)/bandage
	scripts/pg-servers.sh install 13 $(PG_VERSIONS)
	@failed=""; summary=""; \
	for v in $(PG_VERSIONS); do \
	  echo "== PostgreSQL $$v: $(PG_SUITES)"; start=$$(date +%s); \
	  PG_VERSION=$$v PG_SERVERS_REQUIRED=1 BANDAGE=$(abspath $(BUILD)/bandage) \
	    $(PYTEST) $(PYTEST_ARGS) -p no:cacheprovider $(addprefix tests/integration/,$(PG_SUITES)) \
	    || failed="$$failed $$v"; \
	  summary="$$summary PostgreSQL $$v: $$(( $$(date +%s) - start )) s;"; \
	done; \
	echo "== check-pg-versions:$$summary"; \
	if [ -n "$$failed" ]; then echo "== failed on PostgreSQL$$failed"; exit 1; fi

bench: $(BUILD)/bandage
	bench/run

# Keeps build/deps: the static build's dependencies take minutes to rebuild.
clean:
	find $(BUILD) -mindepth 1 -maxdepth 1 ! -name deps -exec rm -rf {} + 2>/dev/null || true

distclean:
	rm -rf $(BUILD)

# The fully static musl release binary (build/bandage-static) and its
# dependencies built from Debian's own sources: see static.mk.
-include static.mk

demo: $(BUILD)/bandage
	scripts/demo.sh

# libFuzzer on the JSON escaper (clang); FUZZ_SECONDS=60 by default.
FUZZ_SECONDS ?= 60
$(BUILD)/fuzz_json: tests/fuzz/fuzz_json.c entrypoint/json.c entrypoint/json.h
	@mkdir -p $(@D)
	clang $(WARN) -O1 -g -fsanitize=fuzzer,address,undefined -Ientrypoint -o $@ tests/fuzz/fuzz_json.c entrypoint/json.c

fuzz: $(BUILD)/fuzz_json
	@mkdir -p $(BUILD)/fuzz-corpus
	$(BUILD)/fuzz_json -max_total_time=$(FUZZ_SECONDS) -max_len=4096 $(BUILD)/fuzz-corpus
-include podman.mk
