# The fully static musl release binary, included by the Makefile.
#
#   make static               build/bandage-static (stripped, static, no PT_INTERP)
#   make static-deps          only the dependencies (build/deps/stamp)
#   make static-deps-refresh  rebuild a dependency whose Debian source has a newer version
#   make static-verify        file/readelf/size checks, then --version in an empty chroot
#   make check-static         tests/integration/test_static.py: the static binary as PID 1
#                             in an empty root (binary, CA bundle, hosts), as root
#   make check-deploy-files   Dockerfile, railpack.json, examples/railway/railway.ts, the
#                             legacy railway.json and nixpacks.toml, examples/kubernetes.yaml
#                             checked statically (no Docker); also run by `make check`
#   make static-clean         remove build/bandage-static (build/deps is kept)
#   make static-deps-clean    remove build/deps (the next `make static` rebuilds it: ~6 min on 2 cores)
#
# OpenSSL 3, libpq and libcurl are built once by scripts/static-deps.sh from
# Debian's own source packages (`apt-get source`) into $(STATIC_DEPS)/usr, with
# musl-gcc. $(STATIC_DEPS)/stamp lists the source package versions; it is
# rebuilt only when it is missing or the script changes (and then the script
# itself skips every component whose recipe did not change).

STATIC_DEPS     ?= $(BUILD)/deps
STATIC_PREFIX   := $(STATIC_DEPS)/usr
STATIC_STAMP    := $(STATIC_DEPS)/stamp
STATIC_CC       := $(STATIC_DEPS)/bin/musl-cc
STATIC_BIN      := $(BUILD)/bandage-static
STATIC_JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
STATIC_MAX_SIZE ?= 4194304
STATIC_CFLAGS   := $(WARN) $(INC) -O2 -DBANDAGE_VERSION='"$(VERSION)"' -isystem $(STATIC_PREFIX)/include \
                   -ffunction-sections -fdata-sections
# -s strips; --gc-sections drops the unused functions of the libraries (built
# with a section per function by scripts/static-deps.sh).
STATIC_LDFLAGS  := -static -s -Wl,--gc-sections -L$(STATIC_PREFIX)/lib
# libpq's own helpers are the *_shlib variants (built for libpq, not the server).
STATIC_LIBS     := -lpq -lpgcommon_shlib -lpgport_shlib -lcurl -lssl -lcrypto

.PHONY: static static-deps static-deps-refresh static-verify static-clean static-deps-clean \
        check-static check-deploy-files

static: $(STATIC_BIN)

static-deps: $(STATIC_STAMP)

$(STATIC_STAMP): scripts/static-deps.sh
	JOBS=$(STATIC_JOBS) bash scripts/static-deps.sh $(STATIC_DEPS)

static-deps-refresh:
	JOBS=$(STATIC_JOBS) bash scripts/static-deps.sh --refresh $(STATIC_DEPS)

# Linked into a temporary name first: a failed link or size check leaves no binary.
$(STATIC_BIN): $(SRC) $(HDR) VERSION static.mk $(STATIC_STAMP)
	@mkdir -p $(@D)
	$(STATIC_CC) $(STATIC_CFLAGS) -o $@.tmp $(SRC) $(STATIC_LDFLAGS) $(STATIC_LIBS)
	@size=$$(stat -c %s $@.tmp); \
	if [ $$size -gt $(STATIC_MAX_SIZE) ]; then \
	  echo "$@: $$size bytes, over the $(STATIC_MAX_SIZE)-byte limit" >&2; rm -f $@.tmp; exit 1; \
	fi; \
	mv $@.tmp $@; echo "$@: $$size bytes ($$(sed 's/$$/, /' $(STATIC_STAMP) | tr -d '\n' | sed 's/, $$//'))"

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
	rm -f $(STATIC_BIN) $(STATIC_BIN).tmp

static-deps-clean:
	rm -rf $(STATIC_DEPS)

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
# command of railpack.json, examples/railway/railway.ts (the script's
# defaults) and the legacy railway.json / nixpacks.toml, and the bandage
# containers of the Kubernetes example, against bandage's real flags and
# variables. Part of
# `make check` (it takes a second).
check-deploy-files: $(BUILD)/bandage
	scripts/check-dockerfile.sh Dockerfile
	/usr/bin/python3 scripts/check-deploy-files.py --bandage $(BUILD)/bandage \
	  --kubernetes examples/kubernetes.yaml railway.json nixpacks.toml

check: check-deploy-files
