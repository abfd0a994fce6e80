# bandage: the fully static release binary on an empty (`scratch`) image.
#
#   docker build -t bandage .
#
# The image holds /bandage, /THIRD_PARTY_NOTICES (the licences and notices of
# the libraries the static binary contains: OpenSSL, libpq, libcurl, musl) and
# a CA bundle (/etc/ssl/certs/ca-certificates.crt, where bandage looks first),
# nothing else. Use it from an app's Dockerfile:
#
#   COPY --from=bandage /bandage /usr/local/bin/bandage
#   COPY --from=bandage /THIRD_PARTY_NOTICES /usr/local/share/doc/bandage/
#   ENTRYPOINT ["bandage", "--"]
#   CMD ["node", "dist/index.js"]
#
# (`bandage` there is this image's tag; a scratch or distroless app image also
# wants the bundle: COPY --from=bandage /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/)
#
# The builder runs the repository's own recipe, `make static`: OpenSSL, libpq
# and libcurl built with musl from Debian's source packages
# (scripts/static-deps.sh, a few minutes, cached as its own layer), then
# build/bandage-static and build/THIRD_PARTY_NOTICES (collected from the same
# source trees, checked against the link). scripts/check-dockerfile.sh checks
# this file without a Docker engine (`make check-deploy-files`).

FROM debian:bookworm AS builder
# make, gcc, pkg-config: what the Makefile needs to be read at all;
# ca-certificates: the bundle the final image ships. scripts/static-deps.sh
# installs the rest itself (musl-tools, dpkg-dev, perl, deb-src entries...).
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      make gcc libc6-dev pkg-config ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The dependencies first: only these files decide them, so editing the C
# sources does not rebuild OpenSSL, libpq and libcurl.
COPY Makefile static.mk VERSION ./
COPY scripts/static-deps.sh scripts/
RUN make static-deps
COPY . .
RUN make static && build/bandage-static --version

FROM scratch
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /src/build/bandage-static /bandage
COPY --from=builder /src/build/THIRD_PARTY_NOTICES /THIRD_PARTY_NOTICES
ENTRYPOINT ["/bandage"]
