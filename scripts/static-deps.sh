#!/usr/bin/env bash
# Build OpenSSL, libpq, libcurl, jansson and libpg_query as static musl libraries from
# Debian's own sources (`apt-get source`; libpg_query: a pinned upstream
# tarball from the Debian archive's pool, see fetch_pg_query), for the fully
# static release binary.
#
#   scripts/static-deps.sh [--refresh] [--arch amd64|arm64] [DEPS_DIR]
#       (default: this machine's architecture into build/deps; make static and
#       make dist run it, and make dist with --arch arm64 into build/deps/arm64)
#
# The machine's own architecture uses Debian's musl-tools; the other is
# cross-compiled (on amd64: Debian's gcc-aarch64-linux-gnu) against a musl
# built here from Debian's own musl source package (musl-tools cannot be
# installed for another architecture); the libraries' recipe is the same.
#
# --refresh: also rebuild a component when a newer Debian source version of it
# can be downloaded (otherwise a built component is kept as long as its recipe
# below is unchanged; the versions come from whatever apt offered then).
#
# Layout under DEPS_DIR (nothing of it is ever committed):
#   bin/musl-cc     musl-gcc wrapper that also sees the kernel headers (kinc/)
#   musl/           arm64 only: musl's prefix (lib/libc.a, lib/musl-gcc.specs)
#   usr/            prefix: include/ and lib/*.a of the libraries
#   src/<pkg>/      the extracted Debian source packages and their build trees
#   log/<pkg>.log   each build's full output
#   stamp           the source package versions built; written last
#
# A component whose own stamp (src/<pkg>.done: version and recipe hash) matches
# its recipe (its build function here, the toolchain) is not rebuilt, so a
# failed run resumes where it stopped.
# Reproducible: each component is built with SOURCE_DATE_EPOCH set to its
# Debian changelog's date (libpg_query: its tarball's file date; OpenSSL
# records a "built on" date), from relative source paths, and records no
# build directory.
# Environment: JOBS (parallel make jobs, default nproc); PG_QUERY=1 (the
# default) also builds libpg_query (PostgreSQL's parser, for the statement
# checks), PG_QUERY=0 leaves it out; DEBIAN_MIRROR (default: apt's own Debian
# archive for this release) is where libpg_query's tarball is fetched from.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
self="$here/$(basename "$0")"
deps="" prefix="" arch="" triplet="" ossl_target=""
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

# Binary packages naming the sources we want; apt maps each to its source
# package (openssl, postgresql-NN, curl) and picks the newest version.
SRC_FOR_OPENSSL=libssl-dev
SRC_FOR_LIBPQ=libpq-dev
SRC_FOR_CURL=libcurl4-openssl-dev
SRC_FOR_CMOCKA=libcmocka-dev
SRC_FOR_JANSSON=libjansson-dev
# PostgreSQL's parser for the statement checks (PG_QUERY=1, static.mk's
# STATIC_PG_QUERY=1, the default): pganalyze's libpg_query 17-6.1.0, the
# grammar of PostgreSQL 17.4. Debian 12's own source (15-4.0.0) is not
# served by the archive (its orig tarball answers 404); the pool still holds
# the upstream tarball of a newer upload, which apt's Sources indexes for
# this release do not list: so no `apt-get source`, but this path under the
# archive, checked against this SHA-256 (computed once when pinned) before
# it is extracted. Changing either rebuilds libpg_query.
PG_QUERY_SRCPKG=libpg-query
PG_QUERY_VERSION=17-6.1.0
PG_QUERY_POOL_PATH=pool/main/libp/libpg-query/libpg-query_17-6.1.0.orig.tar.gz
PG_QUERY_SHA256=a3dc0e4084a23da35128d4e9809ff27241c29a44fde74ba40a378b33d2cdefe2

# Nothing of the caller's make or compiler settings leaks into the builds.
unset MAKEFLAGS MFLAGS MAKEOVERRIDES MAKELEVEL CFLAGS CPPFLAGS CXXFLAGS LDFLAGS LIBS CPP LD AR
export LC_ALL=C

say() { printf 'static-deps: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# A component's recipe: its build function, the toolchain setup, the
# architecture and the musl (Debian's musl-dev, or the one built here).
# Editing anything else in this script rebuilds nothing.
recipe_of() {
  { declare -f "build_$1" setup_toolchain; echo "$DEPS_CFLAGS $arch"
    if [ -z "$triplet" ]; then dpkg-query -W -f='${Version}\n' musl-dev 2>/dev/null
    elif [ "$1" != musl ]; then cat "$deps/src/musl.done" 2>/dev/null; fi
    [ "$1" != libpg_query ] || echo "$PG_QUERY_POOL_PATH $PG_QUERY_SHA256"
  } | sha256sum | cut -c1-16
}

# The architecture's names: OpenSSL's target and the GNU triplet of the cross
# toolchain: empty for the machine's own architecture (Debian's musl-gcc, as
# in the Dockerfile's build stage on an arm64 host).
host_arch() { dpkg --print-architecture 2>/dev/null || echo amd64; }
set_arch() {
  case "$1" in
    amd64) ossl_target=linux-x86_64; triplet=x86_64-linux-gnu ;;
    arm64) ossl_target=linux-aarch64; triplet=aarch64-linux-gnu ;;
    *) die "--arch $1: not supported (amd64 or arm64)" ;;
  esac
  [ "$1" != "$(host_arch)" ] || triplet=""
  arch=$1
}

SUDO=""
APT=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq)
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; APT=(sudo "${APT[@]}"); fi

# --- host tools -------------------------------------------------------------
need_pkgs() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep 'install ok installed' >/dev/null || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  "${APT[@]}" update
  "${APT[@]}" install -y --no-install-recommends "${missing[@]}"
}

# --- deb-src for the running release ---------------------------------------
codename() {
  local c=""
  # shellcheck disable=SC1091
  [ -r /etc/os-release ] && c=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$c" ] || c=$(awk -F'[ \t]+' '$1 ~ /^deb$/ {print $3; exit}' /etc/apt/sources.list 2>/dev/null | sed 's/-.*//')
  [ -n "$c" ] || die "cannot tell the Debian release (no VERSION_CODENAME in /etc/os-release)"
  echo "$c"
}

have_sources_target() {
  # shellcheck disable=SC2016 # apt's own $(FIELD) syntax
  apt-get indextargets --format '$(IDENTIFIER)' 2>/dev/null | grep -x Sources >/dev/null
}

# Mirror every enabled `deb` entry of this release (suite CODENAME or
# CODENAME-*) as a `deb-src` entry, in the format it was written in.
write_deb_src() {
  local cn=$1 out=/etc/apt/sources.list.d/bandage-src.sources tmp
  tmp=$(mktemp)
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    [ "$f" = "$out" ] && continue
    # deb822: one stanza per paragraph; keep its URIs, Suites, Components,
    # Signed-By (continuation lines included), turn Types into deb-src.
    awk -v cn="$cn" '
      BEGIN { RS = ""; FS = "\n" }
      {
        types = ""; suites = ""; enabled = "yes"; body = ""
        for (i = 1; i <= NF; i++) {
          line = $i
          if (line ~ /^#/) continue
          low = tolower(line)
          if (low ~ /^types:/)   { types = substr(line, 7); continue }
          if (low ~ /^enabled:/) { enabled = tolower(substr(line, 9)); gsub(/[ \t]/, "", enabled); continue }
          if (low ~ /^suites:/)  suites = substr(line, 8)
          body = body line "\n"
        }
        if (enabled == "no") next
        if ((" " types " ") !~ /[ \t]deb[ \t]/) next
        n = split(suites, s, /[ \t]+/); ok = 0
        for (j = 1; j <= n; j++) if (s[j] == cn || index(s[j], cn "-") == 1) ok = 1
        if (!ok) next
        printf "Types: deb-src\n%s\n", body
      }' "$f" >>"$tmp"
  done
  # One-line format (sources.list and *.list) becomes deb822 too.
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -e "$f" ] || continue
    awk -v cn="$cn" '
      $1 == "deb" {
        i = 2; opts = ""
        if ($2 ~ /^\[/) { while (i <= NF) { opts = opts " " $i; if ($i ~ /\]$/) { i++; break } i++ } }
        uri = $i; suite = $(i + 1); comps = ""
        for (j = i + 2; j <= NF; j++) { if ($j ~ /^#/) break; comps = comps (comps == "" ? "" : " ") $j }
        if (suite != cn && index(suite, cn "-") != 1) next
        signed = ""
        if (match(opts, /signed-by=[^] ]+/)) signed = substr(opts, RSTART + 10, RLENGTH - 10)
        printf "Types: deb-src\nURIs: %s\nSuites: %s\nComponents: %s\n", uri, suite, comps
        if (signed != "") printf "Signed-By: %s\n", signed
        printf "\n"
      }' "$f" >>"$tmp"
  done
  [ -s "$tmp" ] || { rm -f "$tmp"; die "no 'deb' entry for $cn found in /etc/apt to mirror as deb-src"; }
  say "adding deb-src entries for $cn: $out"
  { echo "# Added by bandage scripts/static-deps.sh: source packages for the static build."
    cat "$tmp"; } | $SUDO tee "$out" >/dev/null
  $SUDO chmod 644 "$out"
  rm -f "$tmp"
}

ensure_deb_src() {
  local cn
  cn=$(codename)
  if ! have_sources_target; then
    write_deb_src "$cn"
  fi
  if ! apt-cache showsrc "$SRC_FOR_OPENSSL" 2>/dev/null | grep '^Package:' >/dev/null; then
    say "apt-get update (deb-src indexes)"
    "${APT[@]}" update
  fi
  apt-cache showsrc "$SRC_FOR_OPENSSL" 2>/dev/null | grep '^Package:' >/dev/null \
    || die "apt has no source package for $SRC_FOR_OPENSSL; is a deb-src entry for $cn configured?"
}

# "srcpkg version" lines of the source packages building binary package $1,
# newest first (apt-get source would pick the first).
source_candidates() {
  apt-cache showsrc "$1" 2>/dev/null | awk '
    /^Package: / { p = $2 } /^Version: / { print p, $2 }' | sort -u |
  { mapfile -t lines
    # insertion sort by dpkg version order, newest first
    local i j t
    for ((i = 1; i < ${#lines[@]}; i++)); do
      t=${lines[i]}; j=$((i - 1))
      while ((j >= 0)) && dpkg --compare-versions "${t#* }" gt "${lines[j]#* }"; do
        lines[j + 1]=${lines[j]}; j=$((j - 1))
      done
      lines[j + 1]=$t
    done
    [ ${#lines[@]} -gt 0 ] && printf '%s\n' "${lines[@]}"; true; }
}

# --- musl toolchain with kernel headers ---------------------------------------
setup_toolchain() {
  local multiarch d kdirs musl_gcc=musl-gcc
  if [ -z "$triplet" ]; then
    multiarch=$(gcc -print-multiarch 2>/dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH)
    kdirs="/usr/include/linux /usr/include/asm-generic /usr/include/$multiarch/asm"
    AR=ar RANLIB=ranlib
  else
    # The cross kernel headers (linux-libc-dev-arm64-cross), and the musl-gcc
    # wrapper that build_musl installs (it runs $triplet-gcc).
    kdirs="/usr/$triplet/include/linux /usr/$triplet/include/asm-generic /usr/$triplet/include/asm"
    # shellcheck disable=SC2016 # expanded by the wrapper, not here
    musl_gcc='"$d/musl/bin/musl-gcc"'
    AR=$triplet-ar RANLIB=$triplet-ranlib
  fi
  mkdir -p "$deps/kinc" "$deps/bin"
  for d in $kdirs; do
    [ -d "$d" ] || die "kernel headers missing: $d (package linux-libc-dev${triplet:+-$arch-cross})"
    ln -sfn "$d" "$deps/kinc/$(basename "$d")"
  done
  # -idirafter: musl's own headers always win; the kernel's come last.
  cat >"$deps/bin/musl-cc" <<EOF
#!/bin/sh
# musl-gcc ($arch) that can also see the kernel headers (linux/, asm/, asm-generic/).
d=\$(cd "\$(dirname "\$0")/.." && pwd)
exec $musl_gcc -idirafter "\$d/kinc" "\$@"
EOF
  chmod 755 "$deps/bin/musl-cc"
  # By name on PATH: OpenSSL records its compiler line in the library.
  PATH="$deps/bin:$PATH"
  CC=musl-cc
  export CC PATH AR RANLIB
}

# --- one component -------------------------------------------------------------
# fetch NAME BINPKG: extract the newest downloadable source package building
# BINPKG; sets SRCDIR and VER ("srcpkg version"). A mirror may list a version
# in its index whose files it does not (yet) serve: then the next older one.
fetch() {
  local name=$1 bin=$2 dir="$deps/src/$1" cand c p v updated=${3:-}
  mapfile -t cand < <(source_candidates "$bin")
  [ ${#cand[@]} -gt 0 ] || die "$name: apt knows no source package for $bin (deb-src missing?)"
  [ -n "$updated" ] || : >"$deps/log/$name.fetch.log"
  for c in "${cand[@]}"; do
    p=${c% *}; v=${c#* }
    rm -rf "$dir"; mkdir -p "$dir"
    say "$name: apt-get source $p=$v"
    if (cd "$dir" && apt-get source -q "$p=$v") >>"$deps/log/$name.fetch.log" 2>&1; then
      SRCDIR=$(find "$dir" -mindepth 1 -maxdepth 1 -type d -print -quit)
      [ -n "$SRCDIR" ] || die "$name: no source tree extracted in $dir"
      VER="$p $v"
      SRC_EPOCH=$(dpkg-parsechangelog -l "$SRCDIR/debian/changelog" -STimestamp) \
        || die "$name: no date in $SRCDIR/debian/changelog"
      return 0
    fi
    say "warning: $name: $p $v could not be downloaded (see $deps/log/$name.fetch.log); trying an older version"
  done
  if [ -z "$updated" ]; then
    say "$name: apt-get update, then trying again"
    "${APT[@]}" update
    fetch "$name" "$bin" updated
    return
  fi
  die "$name: no version of the source of $bin could be downloaded"
}

# The Debian archive apt uses for this release (its main component), e.g.
# http://MIRROR/debian/; DEBIAN_MIRROR overrides it.
debian_archive() {
  local cn u
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "${DEBIAN_MIRROR%/}/"; return 0; fi
  cn=$(codename)
  # shellcheck disable=SC2016 # apt's own $(FIELD) syntax
  u=$(apt-get indextargets --format '$(REPO_URI)' "Origin: Debian" "Label: Debian" \
        "Codename: $cn" "Component: main" 2>/dev/null | sort -u | head -1)
  if [ -z "$u" ]; then
    "${APT[@]}" update
    # shellcheck disable=SC2016
    u=$(apt-get indextargets --format '$(REPO_URI)' "Origin: Debian" "Label: Debian" \
          "Codename: $cn" "Component: main" 2>/dev/null | sort -u | head -1)
  fi
  [ -n "$u" ] || die "libpg_query: apt has no Debian archive for $cn configured (set DEBIAN_MIRROR)"
  echo "${u%/}/"
}

# fetch_pg_query: libpg_query's pinned tarball (PG_QUERY_POOL_PATH under the
# Debian archive, by apt's own downloader), kept in $deps/src/libpg_query/
# and reused while its SHA-256 matches; extracted only once it does. Sets
# SRCDIR, VER and SRC_EPOCH (the tarball's own file dates: no
# debian/changelog in an upstream tarball).
fetch_pg_query() {
  local dir="$deps/src/libpg_query" tgz url sum
  tgz="$dir/$(basename "$PG_QUERY_POOL_PATH")"
  mkdir -p "$dir"
  : >"$deps/log/libpg_query.fetch.log"
  sum=""
  [ ! -f "$tgz" ] || sum=$(sha256sum <"$tgz" | cut -c1-64)
  if [ "$sum" != "$PG_QUERY_SHA256" ]; then
    url="$(debian_archive)$PG_QUERY_POOL_PATH"
    rm -f "$tgz" "$tgz.part"
    say "libpg_query: downloading $url"
    /usr/lib/apt/apt-helper download-file "$url" "$tgz.part" "SHA256:$PG_QUERY_SHA256" \
      >>"$deps/log/libpg_query.fetch.log" 2>&1 || {
      tail -20 "$deps/log/libpg_query.fetch.log" >&2
      rm -f "$tgz.part" "$tgz.part.FAILED" # (apt-helper keeps a mismatch as .FAILED)
      die "libpg_query: could not download $url with SHA-256 $PG_QUERY_SHA256" \
          "(see $deps/log/libpg_query.fetch.log; PG_QUERY=0 builds without the parser)"
    }
    mv "$tgz.part" "$tgz"
  fi
  # apt-helper checked it; this check is the script's own, before tar reads a byte.
  sum=$(sha256sum <"$tgz" | cut -c1-64)
  if [ "$sum" != "$PG_QUERY_SHA256" ]; then
    rm -f "$tgz"
    die "libpg_query: $tgz has SHA-256 $sum, not the pinned $PG_QUERY_SHA256: not extracted"
  fi
  find "$dir" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
  tar -xzf "$tgz" -C "$dir" >>"$deps/log/libpg_query.fetch.log" 2>&1 ||
    die "libpg_query: cannot extract $tgz"
  SRCDIR=$(find "$dir" -mindepth 1 -maxdepth 1 -type d -print -quit)
  if [ -z "$SRCDIR" ] || [ ! -f "$SRCDIR/pg_query.h" ]; then
    die "libpg_query: no source tree in $tgz"
  fi
  VER="$PG_QUERY_SRCPKG $PG_QUERY_VERSION"
  SRC_EPOCH=$(stat -c %Y "$SRCDIR/pg_query.h")
}

# run NAME CMD... : run a build step, output to the component's log
# shellcheck disable=SC2317 # called indirectly
run() {
  local name=$1; shift
  printf '\n+ %s\n' "$*" >>"$deps/log/$name.log"
  "$@" >>"$deps/log/$name.log" 2>&1 || {
    tail -40 "$deps/log/$name.log" >&2
    die "$name: failed: $* (full log: $deps/log/$name.log)"
  }
}

# Every library is configured for /usr and installed with DESTDIR=$deps, so
# no build path ends up in the binary. Optimised for size (a handful of TLS
# handshakes and HTTP requests per start: -Os costs nothing measurable), code
# and data in their own sections (the final link drops what is unused) and no
# unwind tables.
DEPS_CFLAGS="-Os -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables -fno-unwind-tables"

# shellcheck disable=SC2317 # called indirectly
build_musl() {
  cd "$SRCDIR"
  # Static only; installed under $deps/musl, whose musl-gcc wrapper (asked
  # for: without glibc headers for the target, "auto" builds none) and specs
  # point at it. Debian's patches (debian/patches, applied by apt-get source)
  # are part of the source as on amd64.
  run musl ./configure --prefix="$deps/musl" --target="$triplet" \
    CROSS_COMPILE="$triplet-" CC="$triplet-gcc" --disable-shared --enable-wrapper=gcc \
    CFLAGS="-Os -ffunction-sections -fdata-sections"
  run musl make -j"$jobs"
  run musl make install
}

# shellcheck disable=SC2317 # called indirectly
build_openssl() {
  cd "$SRCDIR"
  # no-async: musl has no makecontext. --openssldir=/etc/ssl: OpenSSL's
  # default CA file and directory are /etc/ssl/cert.pem and /etc/ssl/certs
  # (also where openssl.cnf is looked for).
  # The rest drops what neither a PostgreSQL nor an HTTPS client needs: the
  # default provider links in every algorithm it offers. TLS 1.2 and 1.3 only
  # (with ECDHE, RSA, ECDSA, Ed25519, AES-GCM/CBC, ChaCha20-Poly1305); no
  # finite-field DH (DHE suites: PostgreSQL has offered ECDHE since 9.4, and
  # every HTTPS server does), PSK, SRP, CMS, CMP, OCSP, timestamps, RFC 3779,
  # DSA, GOST, CMAC/SIV, OCB, scrypt, SCTP/SRTP/DTLS, NPN, multi-block
  # AES-SHA; no console UI (no passphrase prompt on a terminal: sslpassword
  # is the way). DES stays: client keys in the traditional PEM format are
  # often DES-EDE3 encrypted.
  # shellcheck disable=SC2086
  run openssl ./Configure "$ossl_target" --prefix=/usr --libdir=lib --openssldir=/etc/ssl \
    no-shared no-tests no-engine no-dso no-async no-comp no-legacy \
    no-ssl3 no-tls1 no-tls1_1 no-dtls no-dgram no-srp no-psk no-ct no-ec2m no-sm2 no-sm3 no-sm4 \
    no-camellia no-aria no-seed no-idea no-rc2 no-rc4 no-rc5 no-md4 no-mdc2 \
    no-whirlpool no-bf no-cast no-blake2 no-siphash no-rmd160 \
    no-cms no-cmp no-ocsp no-ts no-rfc3779 no-dh no-dsa no-gost no-cmac no-siv no-ocb \
    no-scrypt no-srtp no-nextprotoneg no-multiblock no-ssl-trace no-ui-console \
    AR="$AR" RANLIB="$RANLIB" $DEPS_CFLAGS
  run openssl make -j"$jobs" build_libs
  run openssl make install_dev DESTDIR="$deps"
}

# shellcheck disable=SC2317 # called indirectly
build_libpq() {
  cd "$SRCDIR"
  # --sysconfdir as Debian's libpq: pg_service.conf in /etc/postgresql-common.
  run libpq ./configure ${triplet:+--host=$triplet} --prefix=/usr --sysconfdir=/etc/postgresql-common \
    --with-ssl=openssl --without-readline --without-icu --without-zlib \
    --without-gssapi --without-ldap --disable-nls \
    CC="$CC" AR="$AR" RANLIB="$RANLIB" CFLAGS="$DEPS_CFLAGS" CPPFLAGS="-I$prefix/include" \
    LDFLAGS="-L$prefix/lib"
  run libpq make -j"$jobs" -C src/include
  run libpq make -j"$jobs" -C src/common
  run libpq make -j"$jobs" -C src/port
  # Only the static library: the shared build's "must not call exit" check
  # fails against a static OpenSSL.
  run libpq make -j"$jobs" -C src/interfaces/libpq all-static-lib
  mkdir -p "$prefix/lib" "$prefix/include"
  install -m 644 src/interfaces/libpq/libpq.a src/common/libpgcommon_shlib.a \
    src/port/libpgport_shlib.a "$prefix/lib/"
  install -m 644 src/interfaces/libpq/libpq-fe.h src/interfaces/libpq/libpq-events.h \
    src/include/postgres_ext.h "$prefix/include/"
  [ -f src/include/pg_config_ext.h ] && install -m 644 src/include/pg_config_ext.h "$prefix/include/"
  return 0
}

# shellcheck disable=SC2317 # called indirectly
build_curl() {
  cd "$SRCDIR"
  # HTTP and HTTPS (OpenSSL) only. No CA bundle or path is compiled in:
  # --with-ca-fallback uses OpenSSL's defaults (SSL_CERT_FILE/SSL_CERT_DIR,
  # else /etc/ssl/cert.pem and /etc/ssl/certs) unless CURLOPT_CAINFO is set.
  # Proxies (HTTPS_PROXY...) and basic/digest auth stay; no verbose output
  # (bandage never sets CURLOPT_VERBOSE; error messages stay), progress
  # meter, unix sockets or option-name tables. pkg-config sees only our
  # OpenSSL, its paths under $deps (the sysroot).
  run curl env PKG_CONFIG_LIBDIR="$prefix/lib/pkgconfig" PKG_CONFIG_PATH= \
    PKG_CONFIG_SYSROOT_DIR="$deps" \
    ./configure ${triplet:+--host=$triplet} --prefix=/usr --disable-shared --enable-static \
    --disable-maintainer-mode --disable-dependency-tracking \
    --with-openssl="$prefix" --without-ca-bundle --without-ca-path --with-ca-fallback \
    --enable-http --disable-ftp --disable-file --disable-ldap --disable-ldaps \
    --disable-rtsp --disable-dict --disable-telnet --disable-tftp --disable-pop3 \
    --disable-imap --disable-smtp --disable-gopher --disable-mqtt --disable-smb \
    --disable-manual --disable-libcurl-option --disable-ntlm --disable-ntlm-wb \
    --disable-tls-srp --disable-cookies --disable-alt-svc --disable-hsts --disable-doh \
    --disable-mime --disable-netrc --disable-websockets --enable-threaded-resolver \
    --disable-verbose --disable-progress-meter --disable-unix-sockets \
    --disable-get-easy-options --disable-headers-api --disable-dnsshuffle \
    --without-libpsl --without-libidn2 --without-brotli --without-zstd --without-zlib \
    --without-nghttp2 --without-nghttp3 --without-ngtcp2 --without-quiche \
    --without-libssh2 --without-libssh --without-wolfssh --without-librtmp \
    --without-libgsasl --without-hyper --without-gssapi \
    CC="$CC" AR="$AR" RANLIB="$RANLIB" CFLAGS="$DEPS_CFLAGS"
  run curl make -j"$jobs" -C lib
  run curl make -C lib install DESTDIR="$deps"
  run curl make -C include install DESTDIR="$deps"
}

# arm64 only: the unit tests' framework, so that they run under qemu too
# (libcmocka-dev:arm64 would be glibc's). One file; the definitions its CMake
# build finds on a Linux libc, and the two cmocka.h takes from glibc (64-bit
# words; uintptr_t from <stdint.h>): static.mk's unit-test rule passes them too.
# shellcheck disable=SC2317,SC2086 # called indirectly; word-split flags
build_cmocka() {
  cd "$SRCDIR"
  run cmocka "$CC" $DEPS_CFLAGS -std=gnu99 -Iinclude -DHAVE_SIGNAL_H -DHAVE_STRINGS_H \
    -DHAVE_INTTYPES_H -DHAVE_MALLOC_H -DHAVE_STRUCT_TIMESPEC -DHAVE_CLOCK_REALTIME \
    -DHAVE_SIGLONGJMP -DHAVE_STRSIGNAL -DHAVE_GCC_THREAD_LOCAL_STORAGE \
    -D__WORDSIZE=64 -D_UINTPTR_T_DEFINED -c -o src/cmocka.o src/cmocka.c
  mkdir -p "$prefix/lib" "$prefix/include"
  rm -f "$prefix/lib/libcmocka.a"
  run cmocka "$AR" rcD "$prefix/lib/libcmocka.a" src/cmocka.o
  install -m 644 include/cmocka.h "$prefix/include/"
}

# jansson, the JSON reader of Prisma 8's migration packages
# (entrypoint/db/prisma8_dir.c, canonjson.c): its own CMake build (Debian's
# is autotools, whose configure is not in the source), the static library
# only. MinSizeRel adds -DNDEBUG: its asserts would record the source path
# (__FILE__). Its hash seed comes from /dev/urandom (USE_URANDOM), which
# every container has; it falls back to the time and pid without one.
# shellcheck disable=SC2317 # called indirectly
build_jansson() {
  cd "$SRCDIR"
  local cross=()
  [ -z "$triplet" ] || cross=(-DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64)
  rm -rf build-static
  run jansson cmake -S . -B build-static "${cross[@]}" -DCMAKE_INSTALL_PREFIX=/usr \
    -DCMAKE_INSTALL_LIBDIR=lib -DCMAKE_C_COMPILER="$deps/bin/musl-cc" \
    -DCMAKE_AR="$(command -v "$AR")" -DCMAKE_RANLIB="$(command -v "$RANLIB")" \
    -DCMAKE_BUILD_TYPE=MinSizeRel -DCMAKE_C_FLAGS="$DEPS_CFLAGS" \
    -DJANSSON_BUILD_SHARED_LIBS=OFF -DJANSSON_WITHOUT_TESTS=ON -DJANSSON_EXAMPLES=OFF \
    -DJANSSON_BUILD_DOCS=OFF -DUSE_URANDOM=ON
  run jansson cmake --build build-static -j "$jobs"
  run jansson env DESTDIR="$deps" cmake --install build-static
}

# With PG_QUERY=1 (the default): pganalyze's libpg_query (PostgreSQL 17's
# grammar as a library, see PG_QUERY_VERSION) for the statement checks
# (entrypoint/db/sqltree.c): the static library alone, at -Os with a section
# per function and object, so that the final link keeps the raw parser and
# its JSON output and drops the deparser, the fingerprinting, the protobuf
# output and PL/pgSQL. Its Makefile appends its include paths, -g and -fPIC
# to CFLAGS (override CFLAGS +=) and then its optimisation level
# (CFLAGS_OPT_LEVEL, -O3 by default); its archiver is `$(AR) rs` unless a
# release has ARFLAGS. Its sources are pre-generated (gram.c, scan.c, the
# protobuf code): no bison, flex or protoc.
# It carries its own copies of PostgreSQL's common and port code (wchar.c,
# encnames.c, pgstrcasecmp.c, ...), of its own major: in one static link
# with libpq's libpgcommon_shlib and libpgport_shlib (another major) the
# same names are defined twice, and each side must keep its own. So every
# global it defines, but for its API (pg_query_*), gets a prefix in the
# archive (definitions and its own references alike).
# shellcheck disable=SC2317 # called indirectly
build_libpg_query() {
  cd "$SRCDIR"
  local ar=(AR="$AR" ARFLAGS=rs) nm=nm objcopy=objcopy
  [ -z "$triplet" ] || { nm=$triplet-nm; objcopy=$triplet-objcopy; }
  grep -q '^ARFLAGS' Makefile || ar=(AR="$AR rs")
  run libpg_query make -j"$jobs" build CC="$CC" "${ar[@]}" CFLAGS="$DEPS_CFLAGS" \
    CFLAGS_OPT_LEVEL=-Os
  "$nm" -g --defined-only libpg_query.a |
    awk 'NF == 3 && $3 !~ /^pg_query_/ { print $3, "bandage_pgq_" $3 }' | sort -u >renamed-symbols
  [ -s renamed-symbols ] || die "libpg_query: $nm found no global symbol in libpg_query.a"
  run libpg_query "$objcopy" --redefine-syms=renamed-symbols libpg_query.a
  run libpg_query "$RANLIB" libpg_query.a
  mkdir -p "$prefix/lib" "$prefix/include"
  install -m 644 libpg_query.a "$prefix/lib/"
  install -m 644 pg_query.h "$prefix/include/"
}

# component NAME BINPKG LIBFILE: build unless already built by this recipe
# (with REFRESH=1: unless already built from the newest downloadable version).
component() {
  local name=$1 bin=$2 lib=$3 done="$deps/src/$1.done" have="" recipe
  recipe=$(recipe_of "$1")
  [ -f "$done" ] && [ -f "$lib" ] && have=$(cat "$done")
  if [ -n "$have" ] && [ "${have##* recipe=}" = "$recipe" ] && [ "${REFRESH:-0}" != 1 ]; then
    say "$name: ${have% recipe=*} already built"
    echo "${have% recipe=*}" >>"$deps/stamp.new"
    return 0
  fi
  if [ "$name" = libpg_query ]; then fetch_pg_query; else fetch "$name" "$bin"; fi
  if [ "$have" = "$VER recipe=$recipe" ]; then
    say "$name: $VER already built (newest)"
    echo "$VER" >>"$deps/stamp.new"
    return 0
  fi
  rm -f "$done"
  # A new OpenSSL means everything is rebuilt against it: start from an empty prefix.
  [ "$name" = openssl ] && rm -rf "$prefix"
  : >"$deps/log/$name.log"
  local t0=$SECONDS
  say "$name: building $VER (log: $deps/log/$name.log)"
  # The date OpenSSL's "built on" (and any __DATE__) records: the source's
  # own (fetch, fetch_pg_query), so the same source gives the same bytes on
  # any day.
  SOURCE_DATE_EPOCH=$SRC_EPOCH
  export SOURCE_DATE_EPOCH
  ( "build_$name" )
  say "$name: built in $((SECONDS - t0)) s"
  echo "$VER recipe=$recipe" >"$done"
  echo "$VER" >>"$deps/stamp.new"
}

usage() {
  sed -n '2,/^set -euo/p' "$self" | sed '$d; s/^# \{0,1\}//'
}

main() {
  local a
  a=$(host_arch)
  while [ $# -gt 0 ]; do
    case "$1" in
      -h|--help) usage; exit 0 ;;
      --refresh) REFRESH=1; shift ;;
      --arch) [ $# -ge 2 ] || die "--arch needs amd64 or arm64"; a=$2; shift 2 ;;
      --arch=*) a=${1#--arch=}; shift ;;
      *) break ;;
    esac
  done
  set_arch "$a"
  deps=${1:-build/deps}
  mkdir -p "$deps"
  deps=$(cd "$deps" && pwd)
  prefix="$deps/usr"

  need_pkgs musl-tools musl-dev dpkg-dev make perl gcc linux-libc-dev xz-utils patch pkg-config \
    cmake
  [ -z "$triplet" ] || need_pkgs "gcc-$triplet" "binutils-$triplet" "linux-libc-dev-$arch-cross"
  mkdir -p "$deps/log" "$deps/src"
  rm -f "$deps/stamp.new"
  setup_toolchain
  # Network and deb-src only when something must be fetched.
  local n all="openssl libpq curl jansson"
  [ -z "$triplet" ] || all="musl $all cmocka"
  # (libpg_query needs no deb-src: fetch_pg_query)
  for n in $all; do
    if [ "${REFRESH:-0}" = 1 ] || [ ! -f "$deps/src/$n.done" ] ||
       [ "$(sed 's/.* recipe=//' "$deps/src/$n.done")" != "$(recipe_of "$n")" ]; then
      ensure_deb_src; break
    fi
  done
  local t0=$SECONDS before=""
  # musl first (arm64): a new musl rebuilds every library (their recipe
  # includes its version).
  [ -z "$triplet" ] || component musl musl "$deps/musl/lib/libc.a"
  # OpenSSL first: libpq and curl link against it, so a rebuilt OpenSSL
  # rebuilds them too.
  [ -f "$deps/src/openssl.done" ] && before=$(cat "$deps/src/openssl.done")
  component openssl "$SRC_FOR_OPENSSL" "$prefix/lib/libcrypto.a"
  [ "$before" = "$(cat "$deps/src/openssl.done")" ] ||
    rm -f "$deps/src/libpq.done" "$deps/src/curl.done" "$deps/src/cmocka.done"
  component libpq "$SRC_FOR_LIBPQ" "$prefix/lib/libpq.a"
  component curl "$SRC_FOR_CURL" "$prefix/lib/libcurl.a"
  component jansson "$SRC_FOR_JANSSON" "$prefix/lib/libjansson.a"
  [ -z "$triplet" ] || component cmocka "$SRC_FOR_CMOCKA" "$prefix/lib/libcmocka.a"
  [ "${PG_QUERY:-1}" != 1 ] || component libpg_query "" "$prefix/lib/libpg_query.a"
  mv "$deps/stamp.new" "$deps/stamp"
  say "dependencies ($arch) ready in $((SECONDS - t0)) s: $(tr '\n' ' ' <"$deps/stamp")"
}

main "$@"; exit $?
