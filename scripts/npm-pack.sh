#!/bin/sh
# The npm package (one tarball: both Linux binaries and the sh launcher, the
# LICENSE and the notices of the libraries the binaries contain) from `make
# dist`'s static binaries:
#
#   scripts/npm-pack.sh DIST      DIST/bandage-linux-amd64, DIST/bandage-linux-arm64,
#                                 DIST/THIRD_PARTY_NOTICES
#                                 -> DIST/npm/pg-bandage-VERSION.tgz
#
# One package, not one per platform: per-platform optionalDependencies are
# dropped from a lockfile made on macOS (npm/cli#4828), and `npm ci` on Linux
# then installs no binary. No network (`npm pack` of a directory with no
# dependencies; a private cache), no install scripts. Deterministic: npm pack
# writes fixed mtimes (1985-10-26), sorted entries and normalised modes, so
# the same binaries give the same tarball bytes.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
dist=${1:?usage: scripts/npm-pack.sh DIST (the directory holding bandage-linux-amd64 and bandage-linux-arm64)}
dist=$(cd "$dist" && pwd)
version=$(cat "$repo/VERSION")

command -v npm >/dev/null 2>&1 || {
    echo "npm-pack: npm is not installed (Debian: apt-get install npm)" >&2
    exit 1
}

# The ELF machine of each binary (e_machine, at byte 18: 0x3e x86-64,
# 0xb7 aarch64), so a swapped or missing arm64 build is caught here and not
# by a user's container.
elf_machine() {
    [ "$(od -An -c -N4 "$1" | tr -d ' ')" = '177ELF' ] || { echo none; return; }
    od -An -tx1 -j18 -N1 "$1" | tr -d ' \n'
}
check_binary() { # FILE EXPECTED-MACHINE NAME
    if [ ! -f "$1" ]; then
        echo "npm-pack: $1 is missing (make dist builds it)" >&2
        exit 1
    fi
    got=$(elf_machine "$1")
    if [ "$got" != "$2" ]; then
        echo "npm-pack: $1 is not a linux $3 ELF binary (e_machine $got, want $2)" >&2
        exit 1
    fi
}
check_binary "$dist/bandage-linux-amd64" 3e amd64
check_binary "$dist/bandage-linux-arm64" b7 arm64
# The binaries contain OpenSSL, libpq, libcurl and musl, whose notices must
# travel with every copy (static.mk writes the file beside them).
if [ ! -s "$dist/THIRD_PARTY_NOTICES" ]; then
    echo "npm-pack: $dist/THIRD_PARTY_NOTICES is missing (make dist writes it)" >&2
    exit 1
fi

out=$dist/npm
work=$(mktemp -d "${TMPDIR:-/tmp}/bandage-npm-pack.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
stage=$work/pg-bandage
mkdir -p "$stage/bin" "$stage/libexec/linux-amd64" "$stage/libexec/linux-arm64" "$out"

# Only the files named in package.json's "files"; modes set here (npm pack
# keeps the executable bit, nothing else).
cp "$repo/npm/package.json" "$repo/npm/README.md" "$repo/LICENSE" "$dist/THIRD_PARTY_NOTICES" "$stage/"
cp "$repo/npm/bin/bandage" "$stage/bin/bandage"
cp "$dist/bandage-linux-amd64" "$stage/libexec/linux-amd64/bandage"
cp "$dist/bandage-linux-arm64" "$stage/libexec/linux-arm64/bandage"
chmod 0644 "$stage/package.json" "$stage/README.md" "$stage/LICENSE" "$stage/THIRD_PARTY_NOTICES"
chmod 0755 "$stage/bin/bandage" "$stage/libexec/linux-amd64/bandage" \
    "$stage/libexec/linux-arm64/bandage"

export npm_config_cache="$work/cache" npm_config_offline=true npm_config_audit=false \
    npm_config_fund=false npm_config_update_notifier=false npm_config_loglevel=warn \
    npm_config_ignore_scripts=true
(cd "$stage" && npm pkg set "version=$version")
rm -f "$out"/pg-bandage-*.tgz
(cd "$stage" && npm pack --pack-destination "$out" >/dev/null)
tarball=$out/pg-bandage-$version.tgz
[ -f "$tarball" ] || { echo "npm-pack: npm pack wrote no $tarball" >&2; exit 1; }
# A "files" list that forgot one would silently drop it.
listing=$(tar -tzf "$tarball")
for f in LICENSE THIRD_PARTY_NOTICES bin/bandage libexec/linux-amd64/bandage libexec/linux-arm64/bandage; do
    printf '%s\n' "$listing" | grep -qx "package/$f" ||
        { echo "npm-pack: $tarball lacks $f" >&2; rm -f "$tarball"; exit 1; }
done
echo "npm-pack: $tarball ($(wc -c <"$tarball") bytes)"
