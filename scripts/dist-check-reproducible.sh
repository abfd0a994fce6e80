#!/usr/bin/env bash
# Are the release binaries reproducible? Builds dist/bandage-linux-{amd64,arm64}
# and dist/THIRD_PARTY_NOTICES twice, each time in a fresh copy of this tree
# (tracked and untracked files, not build/ or dist/) at a different path,
# compiling every bandage object and linking anew, against the same dependency
# builds; then compares the two sets byte for byte (SHA-256).
# `make dist-check-reproducible` runs it.
#
#   scripts/dist-check-reproducible.sh DEPS_AMD64 DEPS_ARM64
#
# The dependency builds are shared (they take minutes; scripts/static-deps.sh
# gives them their own fixed dates and relative paths). Exit 0: identical;
# 1: they differ (the two listings and the first differing bytes are shown).
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 DEPS_AMD64 DEPS_ARM64" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
deps_amd64=$1 deps_arm64=$2
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct)}

tmp=$(mktemp -d /tmp/bandage-repro.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# Two paths of different lengths: a path that reached the bytes would show.
copies=("$tmp/a/bandage" "$tmp/second/copy/of/bandage-src")

copy_tree() {
  mkdir -p "$1"
  # tar keeps the files' times: the dependency stamps stay newer than
  # scripts/static-deps.sh, so nothing of the deps is rebuilt.
  (cd "$root" && git ls-files -z --cached --others --exclude-standard |
     while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
     tar --null -T - -cf -) | tar -C "$1" -xf -
}

for i in 0 1; do
  d=${copies[i]}
  copy_tree "$d"
  echo "dist-check-reproducible: build $((i + 1)) in $d"
  make -C "$d" -s --no-print-directory -j"${JOBS:-2}" dist-bins \
    STATIC_DEPS_amd64="$deps_amd64" STATIC_DEPS_arm64="$deps_arm64" STATIC_EPOCH="$epoch"
  (cd "$d/dist" && sha256sum bandage-linux-amd64 bandage-linux-arm64 THIRD_PARTY_NOTICES) >"$tmp/sums.$i"
done

if cmp -s "$tmp/sums.0" "$tmp/sums.1"; then
  cat "$tmp/sums.0"
  echo "dist-check-reproducible: identical (SOURCE_DATE_EPOCH=$epoch)"
  exit 0
fi
echo "dist-check-reproducible: the two builds differ" >&2
diff "$tmp/sums.0" "$tmp/sums.1" >&2 || true
for f in bandage-linux-amd64 bandage-linux-arm64 THIRD_PARTY_NOTICES; do
  cmp "${copies[0]}/dist/$f" "${copies[1]}/dist/$f" >&2 || true
done
exit 1
