# The fully static musl release binary, included by the Makefile.
#
#   make static               build/bandage-static (stripped, static, no PT_INTERP) and
#                             build/THIRD_PARTY_NOTICES (the notices of what it contains)
#   make static-deps          only the dependencies (build/deps/stamp)
#   make static-deps-refresh  rebuild a dependency whose Debian source has a newer version
#   make static-verify        file/readelf/size checks, then --version in an empty chroot
#   make check-static         tests/integration/test_static.py: the static binary as PID 1
#                             in an empty root (binary, CA bundle, hosts), as root
#   make check-deploy-files   Dockerfile, railpack.json, railway.json, examples/railway/railway.ts,
#                             the deprecated nixpacks.toml, examples/kubernetes.yaml
#                             checked statically (no Docker); also run by `make check`
#   make static-clean         remove build/bandage-static (build/deps is kept)
#   make static-deps-clean    remove build/deps (the next `make static` rebuilds it: ~6 min on 2 cores)
#
#   make dist                 dist/bandage-linux-amd64, dist/bandage-linux-arm64 (static musl,
#                             arm64 cross-compiled), dist/THIRD_PARTY_NOTICES, dist/SHA256SUMS;
#                             then scripts/npm-pack.sh dist if it exists (tarballs in
#                             dist/npm/, their sums added)
#   make check-notices        every library the static links used has its section in
#                             build/ and dist/THIRD_PARTY_NOTICES (make static and make dist
#                             check it too, each time they write them)
#   make dist-check-reproducible  both binaries and the notices built twice from copies of
#                             the tree at two different paths (shared dependency builds):
#                             identical bytes
#   make check-arm64          tests/integration/test_arm64.py: dist/bandage-linux-arm64 under
#                             qemu-aarch64-static against the harness's PostgreSQL
#   make dist-clean           remove dist/ and the per-architecture objects (deps are kept)
#
# OpenSSL 3, libpq, libcurl, jansson and libpg_query are built once per architecture by
# scripts/static-deps.sh from Debian's own sources (`apt-get source`; for
# libpg_query a pinned, checksummed tarball from the Debian archive's pool)
# into $(STATIC_DEPS_amd64)/usr and $(STATIC_DEPS_arm64)/usr: the machine's
# own architecture with Debian's musl-gcc, the other cross-compiled (on amd64:
# aarch64-linux-gnu-gcc with a musl built from Debian's musl source). Each
# stamp lists the source package versions; it is
# rebuilt only when it is missing or the script changes (and then the script
# itself skips every component whose recipe did not change).
#
# Reproducible: the objects are compiled from relative paths with
# -ffile-prefix-map, SOURCE_DATE_EPOCH is the last commit's date, the inputs
# are sorted, the binary is stripped (no symbol or file names).

STATIC_ARCHES     := amd64 arm64
# The machine's own architecture: build/bandage-static, deps in build/deps;
# the other one (cross-compiled) has its deps inside it, in build/deps/ARCH:
# `make clean` keeps them, `make static-deps-clean` removes both.
STATIC_HOST_ARCH  := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
STATIC_DEPS       ?= $(BUILD)/deps
STATIC_DEPS_amd64 ?= $(if $(filter amd64,$(STATIC_HOST_ARCH)),$(STATIC_DEPS),$(STATIC_DEPS)/amd64)
STATIC_DEPS_arm64 ?= $(if $(filter arm64,$(STATIC_HOST_ARCH)),$(STATIC_DEPS),$(STATIC_DEPS)/arm64)
STATIC_PREFIX     := $(STATIC_DEPS)/usr
STATIC_STAMP      := $(STATIC_DEPS)/stamp
STATIC_CC         := $(STATIC_DEPS)/bin/musl-cc
STATIC_BIN        := $(BUILD)/bandage-static
STATIC_NOTICES    := $(BUILD)/THIRD_PARTY_NOTICES
STATIC_JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
# Issue 12's goal was 2.5 MiB (2,621,440 bytes), and the binary without a
# parser was at 2,622,128 bytes on amd64 (2,514,104 on arm64). Release
# binaries must check the statements they are about to run (issue 20 item
# 4), so they link libpg_query (STATIC_PG_QUERY, below): PostgreSQL 17's
# grammar costs 1,192,080 bytes on amd64 (to 3,814,208) and 1,179,792 on
# arm64 (to 3,693,896), of which the grammar's tables and actions are about
# 641 KB, the scanner's tables 280 KB, the JSON output 136 KB, the node
# copy/compare functions the grammar calls 65 KB (a -Wl,-Map of the amd64
# link). Prisma 8's migration packages (issue 22) brought it to 3,883,904
# (arm64: 3,759,496): about 39 KB of bandage's own code (prisma8_*.c,
# canonjson.c) and 16 KB of jansson, which reads their JSON (the link map
# again). jansson reading libpg_query's parse tree too, in place of a
# hand-written reader, took 4,096 bytes off amd64 (3,879,808); arm64 stayed
# at 3,759,496. The limit is 3,883,904 plus 40,064 bytes of room: 3,832 KiB.
# A STATIC_PG_QUERY=0 binary is the same minus the grammar (about 1.19 MB).
STATIC_MAX_SIZE   ?= 3923968
# The date a build may record (none does today: a guard): the last commit's.
STATIC_EPOCH       = $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
# bandage's own code at -O2 (-Os would save 20 KB, but gcc's format-truncation
# analysis then fails config.c under -Werror); for size, as the libraries
# (scripts/static-deps.sh): no unwind tables (C, no backtraces), a section per
# function and object.
STATIC_CFLAGS      = $(WARN) $(INC) -O2 -DBANDAGE_VERSION='"$(VERSION)"' $(STATIC_PARSER_FLAG) \
                     -isystem $(1)/usr/include \
                     -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables \
                     -fno-unwind-tables -ffile-prefix-map=$(CURDIR)=.
# -s strips; --gc-sections drops the unused functions of the libraries;
# noseparate-code: no page of padding between the headers, code and rodata.
STATIC_LDFLAGS     = -static -s -Wl,--gc-sections -Wl,-z,noseparate-code -L$(1)/usr/lib
# libpq's own helpers are the *_shlib variants (built for libpq, not the server).
STATIC_LIBS       := -lpq -lpgcommon_shlib -lpgport_shlib -lcurl -lssl -lcrypto -ljansson
# PostgreSQL's parser for the statement checks (libpg_query, PostgreSQL 17's
# grammar: scripts/static-deps.sh): linked by default, as in `make`'s build,
# so that a release binary checks the statements it is about to run. A
# statement the grammar cannot read is "not checked", never refused.
# STATIC_PG_QUERY=0 builds a binary without it (-DBANDAGE_NO_PG_QUERY), whose
# checks only log that nothing was checked. A dependency build's stamp names
# libpg-query when it has it: a stamp that disagrees with STATIC_PG_QUERY
# reruns scripts/static-deps.sh, and so recompiles bandage's objects.
STATIC_PG_QUERY   ?= 1
ifeq ($(STATIC_PG_QUERY),1)
STATIC_LIBS       := -lpg_query $(STATIC_LIBS)
else
STATIC_PARSER_FLAG := -DBANDAGE_NO_PG_QUERY
endif
# Sorted: the link order, and so the bytes, never depend on the file system.
STATIC_SRC        := $(sort $(SRC))

.PHONY: static static-deps static-deps-refresh static-verify static-clean static-deps-clean \
        check-static check-deploy-files dist dist-bins dist-clean dist-check-reproducible check-arm64 \
        check-arm64-unit check-notices static-parser-force

static: $(STATIC_BIN) $(STATIC_NOTICES)

static-deps: $(STATIC_STAMP)

static-deps-refresh:
	JOBS=$(STATIC_JOBS) PG_QUERY=$(STATIC_PG_QUERY) bash scripts/static-deps.sh --refresh --arch amd64 $(STATIC_DEPS_amd64)
	JOBS=$(STATIC_JOBS) PG_QUERY=$(STATIC_PG_QUERY) bash scripts/static-deps.sh --refresh --arch arm64 $(STATIC_DEPS_arm64)

# 1 when the dependency build of architecture $(1) has libpg_query, else 0.
static_has_pg_query = $(if $(shell grep -s '^libpg-query ' $(STATIC_DEPS_$(1))/stamp),1,0)
# Always out of date: what a stamp that disagrees with STATIC_PG_QUERY depends on.
static-parser-force:

# One architecture ($(1)): its dependency build, its objects under
# $(BUILD)/static-$(1)/obj, its binary $(BUILD)/static-$(1)/bandage. Linked
# into a temporary name first: a failed link or size check leaves no binary.
define STATIC_ARCH_RULES
$(STATIC_DEPS_$(1))/stamp: scripts/static-deps.sh \
  $(if $(filter $(STATIC_PG_QUERY),$(call static_has_pg_query,$(1))),,static-parser-force)
	JOBS=$$(STATIC_JOBS) PG_QUERY=$$(STATIC_PG_QUERY) bash scripts/static-deps.sh --arch $(1) $(STATIC_DEPS_$(1))

$(BUILD)/static-$(1)/obj/%.o: entrypoint/%.c $(HDR) VERSION static.mk $(STATIC_DEPS_$(1))/stamp
	@mkdir -p $$(@D)
	SOURCE_DATE_EPOCH=$$(STATIC_EPOCH) $(STATIC_DEPS_$(1))/bin/musl-cc \
	  $$(call STATIC_CFLAGS,$(STATIC_DEPS_$(1))) -c -o $$@ $$<

$(BUILD)/static-$(1)/bandage: $(patsubst entrypoint/%.c,$(BUILD)/static-$(1)/obj/%.o,$(STATIC_SRC))
	$(STATIC_DEPS_$(1))/bin/musl-cc -o $$@.tmp $$^ \
	  $$(call STATIC_LDFLAGS,$(STATIC_DEPS_$(1))) $(STATIC_LIBS) -Wl,-t,-t >$$(@D)/link-inputs
	@size=$$$$(stat -c %s $$@.tmp); \
	if [ $$$$size -gt $(STATIC_MAX_SIZE) ]; then \
	  echo "$$@: $$$$size bytes, over the $(STATIC_MAX_SIZE)-byte limit" >&2; rm -f $$@.tmp; exit 1; \
	fi; \
	mv $$@.tmp $$@; echo "$$@: $$$$size bytes ($$$$(sed 's/$$$$/, /' $(STATIC_DEPS_$(1))/stamp | tr -d '\n' | sed 's/, $$$$//'))"
endef
$(foreach a,$(STATIC_ARCHES),$(eval $(call STATIC_ARCH_RULES,$(a))))

$(STATIC_BIN): $(BUILD)/static-$(STATIC_HOST_ARCH)/bandage
	cp $< $@

# The notices of what the binaries contain (scripts/third-party-notices.sh),
# from the sources the deps were built from and the link's own input list
# (link-inputs: `ld -t -t`, written beside each binary); then
# scripts/check-notices.sh fails when a library the link used has no section.
# $(1): the notices file, $(2): the architectures.
define NOTICES_RECIPE
bash scripts/third-party-notices.sh \
  $(foreach a,$(2),$(a)=$(STATIC_DEPS_$(a))=$(BUILD)/static-$(a)/link-inputs) >$(1).tmp
bash scripts/check-notices.sh $(1).tmp $(foreach a,$(2),$(BUILD)/static-$(a)/link-inputs)
mv $(1).tmp $(1)
endef
NOTICES_INPUTS := scripts/third-party-notices.sh scripts/check-notices.sh LICENSE

# The machine's own binary's (the Dockerfile's image ships it as /THIRD_PARTY_NOTICES).
$(STATIC_NOTICES): $(BUILD)/static-$(STATIC_HOST_ARCH)/bandage $(NOTICES_INPUTS)
	$(call NOTICES_RECIPE,$@,$(STATIC_HOST_ARCH))

# Runs as root (chroot): the binary alone in an empty directory, as on a
# `scratch` image.
static-verify: $(STATIC_BIN)
	@set -e; b=$(STATIC_BIN); \
	info=$$(file $$b); echo "$$info"; echo "$$info" | grep -q 'statically linked'; \
	if readelf -l $$b | grep -q INTERP; then echo "$$b: has a PT_INTERP" >&2; exit 1; fi; \
	size=$$(stat -c %s $$b); echo "size: $$size bytes (limit $(STATIC_MAX_SIZE))"; \
	[ $$size -le $(STATIC_MAX_SIZE) ]; \
	$$b --version; \
	root=$$(mktemp -d); trap 'rm -rf "$$root"' EXIT; cp $$b $$root/bandage; \
	echo "chroot $$root /bandage --version"; chroot $$root /bandage --version; \
	echo "chroot $$root /bandage -- /bandage --version"; chroot $$root /bandage -- /bandage --version; \
	echo "static-verify: ok"

static-clean:
	rm -f $(STATIC_BIN) $(STATIC_BIN).tmp $(STATIC_NOTICES)
	rm -rf $(foreach a,$(STATIC_ARCHES),$(BUILD)/static-$(a))

static-deps-clean:
	rm -rf $(STATIC_DEPS) $(STATIC_DEPS_arm64)

# --- release binaries -------------------------------------------------------------
# dist/: exactly bandage-linux-amd64, bandage-linux-arm64 and SHA256SUMS from
# here; scripts/npm-pack.sh (when it exists) adds dist/npm/*.tgz, whose sums
# are then appended. Every file is rewritten by each run.
DIST      ?= dist
DIST_BINS := $(foreach a,$(STATIC_ARCHES),$(DIST)/bandage-linux-$(a))

$(DIST)/bandage-linux-%: $(BUILD)/static-%/bandage
	@mkdir -p $(@D)
	cp $< $@

# One file for both architectures (a library whose notices differ between
# them has each text, marked).
$(DIST)/THIRD_PARTY_NOTICES: $(foreach a,$(STATIC_ARCHES),$(BUILD)/static-$(a)/bandage) $(NOTICES_INPUTS)
	@mkdir -p $(@D)
	$(call NOTICES_RECIPE,$@,$(STATIC_ARCHES))

dist-bins: $(DIST_BINS) $(DIST)/THIRD_PARTY_NOTICES

dist: $(DIST_BINS) $(DIST)/THIRD_PARTY_NOTICES
	rm -rf $(DIST)/npm
	cd $(DIST) && sha256sum $(notdir $(DIST_BINS)) THIRD_PARTY_NOTICES > SHA256SUMS
	@if [ -e scripts/npm-pack.sh ]; then \
	  echo "scripts/npm-pack.sh $(DIST)"; bash scripts/npm-pack.sh $(DIST) || exit 1; \
	  cd $(DIST) && find npm -name '*.tgz' | LC_ALL=C sort | xargs -r sha256sum >> SHA256SUMS; \
	fi
	cat $(DIST)/SHA256SUMS

dist-clean:
	rm -rf $(DIST) $(foreach a,$(STATIC_ARCHES),$(BUILD)/static-$(a))

# Every library in the static links has its section in the notices (make
# static and make dist run the same check when they write them).
check-notices: $(STATIC_NOTICES) $(DIST)/THIRD_PARTY_NOTICES
	test -f LICENSE
	bash scripts/check-notices.sh $(STATIC_NOTICES) $(BUILD)/static-$(STATIC_HOST_ARCH)/link-inputs
	bash scripts/check-notices.sh $(DIST)/THIRD_PARTY_NOTICES \
	  $(foreach a,$(STATIC_ARCHES),$(BUILD)/static-$(a)/link-inputs)

# Twice, from two copies of the tree at paths of different lengths, each
# compiling its own objects and linking (the dependency builds are shared):
# the two sets of binaries must be identical. Needs the deps (make dist).
dist-check-reproducible: $(foreach a,$(STATIC_ARCHES),$(STATIC_DEPS_$(a))/stamp)
	bash scripts/dist-check-reproducible.sh $(abspath $(STATIC_DEPS_amd64)) $(abspath $(STATIC_DEPS_arm64))

# The arm64 binary under qemu-aarch64-static (Debian's qemu-user-static): the
# cmocka unit tests cross-built for arm64 (static, against the same objects and
# libraries; cmocka from Debian's source, see static-deps.sh), then its flags
# and a real scenario against the harness's PostgreSQL (root: PID namespace).
QEMU_ARM64    ?= qemu-aarch64-static
ARM64_OBJ     := $(patsubst entrypoint/%.c,$(BUILD)/static-arm64/obj/%.o,$(sort $(LIB_SRC)))
ARM64_UNITS   := $(patsubst tests/unit/%.c,$(BUILD)/static-arm64/unit/%,$(sort $(UNIT_SRC)))

# cmocka.h takes these from glibc's headers (see build_cmocka).
ARM64_CMOCKA_FLAGS := -D__WORDSIZE=64 -D_UINTPTR_T_DEFINED

$(BUILD)/static-arm64/unit/%: tests/unit/%.c $(ARM64_OBJ) $(HDR)
	@mkdir -p $(@D)
	$(STATIC_DEPS_arm64)/bin/musl-cc $(call STATIC_CFLAGS,$(STATIC_DEPS_arm64)) $(ARM64_CMOCKA_FLAGS) \
	  -o $@ $< $(ARM64_OBJ) \
	  $(call STATIC_LDFLAGS,$(STATIC_DEPS_arm64)) $(STATIC_LIBS) -lcmocka

check-arm64-unit: $(ARM64_UNITS)
	@for t in $(ARM64_UNITS); do echo "== $(QEMU_ARM64) $$t"; $(QEMU_ARM64) $$t 2>&1 | grep -Ev '^\[ (RUN|      OK) ' ; [ $${PIPESTATUS[0]} -eq 0 ] || exit 1; done

check-arm64: check-arm64-unit $(DIST)/bandage-linux-arm64
	BANDAGE_ARM64=$(abspath $(DIST)/bandage-linux-arm64) $(PYTEST) $(PYTEST_ARGS) tests/integration/test_arm64.py

# The static test app of test_static.py: runs in the empty root, where there
# is no shell and no libc to load.
STATIC_APP := $(BUILD)/static_app
$(STATIC_APP): tests/integration/helpers/static_app.c static.mk
	@mkdir -p $(@D)
	musl-gcc -static $(WARN) -O2 -o $@ $<

# The integration tests that matter for a `scratch` image, against the static
# binary as PID 1 of a new PID namespace chrooted into a directory that holds
# only it, a CA bundle, /etc/hosts, /etc/resolv.conf, /tmp, /proc and the
# static app. Root only. PID 1's resident memory is printed (and written to
# $(BUILD)/check-static-rss.txt).
check-static: $(STATIC_BIN) $(STATIC_APP)
	@rm -f $(BUILD)/check-static-rss.txt
	BANDAGE_STATIC=$(abspath $(STATIC_BIN)) BANDAGE=$(abspath $(STATIC_BIN)) \
	  BANDAGE_STATIC_APP=$(abspath $(STATIC_APP)) \
	  BANDAGE_STATIC_RSS_FILE=$(abspath $(BUILD))/check-static-rss.txt \
	  $(PYTEST) $(PYTEST_ARGS) tests/integration/test_static.py
	@cat $(BUILD)/check-static-rss.txt 2>/dev/null || true

# No Docker engine needed: the Dockerfile's stages and COPY sources; every
# command of railpack.json, railway.json (with its builder and numbers),
# examples/railway/railway.ts (the script's defaults) and the deprecated
# nixpacks.toml, and the bandage
# containers of the Kubernetes example, against bandage's real flags and
# variables. Part of
# `make check` (it takes a second).
check-deploy-files: $(BUILD)/bandage
	scripts/check-dockerfile.sh Dockerfile
	/usr/bin/python3 scripts/check-deploy-files.py --bandage $(BUILD)/bandage \
	  --kubernetes examples/kubernetes.yaml railway.json nixpacks.toml

check: check-deploy-files
