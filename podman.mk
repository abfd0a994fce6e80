# A real container runtime: Debian's podman with runc, included by the Makefile.
#
#   make check-podman            tests/integration/test_podman.py: build/bandage-static in a
#                                FROM scratch image under podman (exit codes, podman stop,
#                                exec'd orphans and zombies, a reset once across podman
#                                restart against the harness's PostgreSQL); about a minute
#   make check-dockerfile-build  the repository's Dockerfile built with podman (its builder's
#                                debian:bookworm made by debootstrap, as no registry answers
#                                here), the image checked, its /bandage taken out as README says
#                                (create + cp) and run through test_podman.py; ~10 min on 2 cores
#                                (most of it `make static-deps` inside the build)
#   make podman-clean            remove $(PODMAN_STORE) (images, layers, the Debian tarball)
#
# Root only. podman is run as helpers/podman.py runs it: CONTAINERS_CONF is
# tests/integration/helpers/containers.conf (no default ulimits: no
# CAP_SYS_RESOURCE here; runc: crun fails on this cgroup layout), with
# --root/--runroot of its own and --storage-driver vfs. Debian packages:
# podman runc debootstrap (see .ci/deps).

PODMAN_CONF   := $(abspath tests/integration/helpers/containers.conf)
PODMAN_STORE  ?= $(BUILD)/podman
PODMAN        = podman --root $(abspath $(PODMAN_STORE))/root \
                --runroot $(abspath $(PODMAN_STORE))/runroot --storage-driver vfs
DEBIAN_TARBALL = $(PODMAN_STORE)/debian-bookworm.tar
DOCKERFILE_IMAGE := localhost/bandage:dockerfile
# The binary the Dockerfile's image holds, taken out of it.
IMAGE_BIN     := $(BUILD)/bandage-from-image

.PHONY: check-podman check-dockerfile-build podman-clean

check-dockerfile-build podman-clean: export CONTAINERS_CONF := $(PODMAN_CONF)

check-podman: $(STATIC_BIN) $(STATIC_NOTICES) $(STATIC_APP)
	@podman --version
	BANDAGE_STATIC=$(abspath $(STATIC_BIN)) BANDAGE_STATIC_APP=$(abspath $(STATIC_APP)) \
	  BANDAGE_NOTICES=$(abspath $(STATIC_NOTICES)) \
	  $(PYTEST) $(PYTEST_ARGS) tests/integration/test_podman.py

# The final image must be exactly /bandage, /THIRD_PARTY_NOTICES and the CA
# bundle, and answer
# `--version` through its ENTRYPOINT ["/bandage"]; the binary README's Railway
# section takes out of it (docker create + docker cp) is $(IMAGE_BIN); then
# test_podman.py builds its app image FROM scratch with README's `COPY
# --from=bandage /bandage /usr/local/bin/bandage` from this image (saved, then
# loaded into the tests' own storage and tagged bandage).
check-dockerfile-build: $(STATIC_APP)
	@set -e; start=$$(date +%s); \
	bash scripts/debian-base-image.sh $(DEBIAN_TARBALL) $(PODMAN); \
	echo "podman build -t $(DOCKERFILE_IMAGE) ."; \
	$(PODMAN) build --network host -t $(DOCKERFILE_IMAGE) -f Dockerfile . >$(PODMAN_STORE)/build.log 2>&1 || \
	  { tail -n 30 $(PODMAN_STORE)/build.log >&2; echo "podman build failed: $(PODMAN_STORE)/build.log" >&2; exit 1; }; \
	built=$$(date +%s); echo "image built in $$((built - start)) s (log: $(PODMAN_STORE)/build.log)"; \
	$(PODMAN) run --rm --network none $(DOCKERFILE_IMAGE) --version; \
	$(PODMAN) rm --force --time 0 bandage-image-check >/dev/null 2>&1 || true; \
	$(PODMAN) create --name bandage-image-check $(DOCKERFILE_IMAGE) >/dev/null; \
	files=$$($(PODMAN) export bandage-image-check | tar -t | grep -v '/$$' | LC_ALL=C sort | tr '\n' ' '); \
	$(PODMAN) cp bandage-image-check:/bandage $(IMAGE_BIN); \
	$(PODMAN) rm bandage-image-check >/dev/null; \
	rm -f $(PODMAN_STORE)/image.tar; $(PODMAN) save -q -o $(PODMAN_STORE)/image.tar $(DOCKERFILE_IMAGE); \
	echo "image files: $$files"; \
	[ "$$files" = "THIRD_PARTY_NOTICES bandage etc/ssl/certs/ca-certificates.crt " ] || \
	  { echo "the image must hold exactly /bandage, /THIRD_PARTY_NOTICES and the CA bundle" >&2; exit 1; }; \
	BANDAGE_STATIC=$(abspath $(IMAGE_BIN)) BANDAGE_STATIC_APP=$(abspath $(STATIC_APP)) \
	  BANDAGE_IMAGE_ARCHIVE=$(abspath $(PODMAN_STORE))/image.tar \
	  $(PYTEST) $(PYTEST_ARGS) tests/integration/test_podman.py; \
	echo "check-dockerfile-build: ok in $$(( $$(date +%s) - start )) s"

podman-clean:
	-$(PODMAN) rm --all --force --time 0 >/dev/null 2>&1
	rm -rf $(PODMAN_STORE)
