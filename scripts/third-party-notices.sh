#!/usr/bin/env bash
# THIRD_PARTY_NOTICES: the licence and copyright notices of everything the
# static release binaries contain, collected from the very sources the build
# compiled (scripts/static-deps.sh's Debian source trees) or, for what the
# toolchain itself links in (the amd64 musl, GCC's crtbegin/crtend), from the
# Debian package that installed the linked file.
#
#   scripts/third-party-notices.sh ARCH=DEPS_DIR=LINK_INPUTS...  > THIRD_PARTY_NOTICES
#
# One argument per architecture: its dependency build (scripts/static-deps.sh's
# DEPS_DIR, with src/ and stamp) and its link's input list (the `ld -t -t`
# output static.mk writes beside the binary, to find the files the toolchain
# provides). One file for all the architectures given: a library whose
# notices are the same on each has one section saying so; where they differ,
# each architecture's text follows.
#
# Each section starts with a rule line of '=' and then "[ID] NAME: what is
# linked"; scripts/check-notices.sh compares those IDs with what the link used.
# The output holds no path of this machine, no date and is sorted: the same
# sources give the same bytes (make dist-check-reproducible compares it).
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "third-party-notices: error: $*" >&2; exit 1; }
[ $# -ge 1 ] || die "usage: $0 ARCH=DEPS_DIR=LINK_INPUTS..."

RULE=$(printf '%80s' '' | tr ' ' '=')

arches=() ; declare -A deps_of inputs_of
for a in "$@"; do
  arch=${a%%=*}; rest=${a#*=}
  if [ "$arch" = "$a" ] || [ "$rest" = "${rest#*=}" ]; then
    die "bad argument '$a' (ARCH=DEPS_DIR=LINK_INPUTS)"
  fi
  deps_of[$arch]=${rest%%=*}; inputs_of[$arch]=${rest#*=}
  [ -f "${deps_of[$arch]}/stamp" ] || die "$arch: ${deps_of[$arch]}/stamp is missing (make static-deps)"
  [ -f "${inputs_of[$arch]}" ] || die "$arch: ${inputs_of[$arch]} is missing (the static link writes it)"
  arches+=("$arch")
done

# The one source tree scripts/static-deps.sh extracted for component $2 in $1.
source_tree() {
  local d
  d=$(find "$1/src/$2" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | sort)
  if [ -z "$d" ] || [ "$(wc -l <<<"$d")" -ne 1 ]; then
    die "$1/src/$2: expected one extracted source tree"
  fi
  printf '%s\n' "$d"
}

# "srcpkg version" of component $2 from the stamp of $1.
stamp_version() {
  local v
  v=$(awk -v p="$2" '$1 == p || $1 ~ "^" p "-[0-9]+$" { print $1, $2; exit }' "$1/stamp")
  [ -n "$v" ] || die "$1/stamp names no $2"
  printf '%s\n' "$v"
}

# The first linked file of $1's link whose name matches the extended regex $2
# (a plain object, or an archive a member was taken from).
linked_file() {
  local f
  f=$(sed -n 's/^(\(.*\)).*/\1/p; /^[^(]/p' "${inputs_of[$1]}" | grep -E -m1 "(^|/)($2)\$" || true)
  [ -n "$f" ] || die "$1: the link (${inputs_of[$1]}) used no file matching $2"
  printf '%s\n' "$f"
}

# The Debian package that installed file $1: "binpkg source version".
package_of() {
  local p
  p=$(dpkg-query -S "$(readlink -f "$1")" 2>/dev/null | head -1 | cut -d: -f1) ||
    die "$1: no Debian package owns it"
  [ -n "$p" ] || die "$1: no Debian package owns it"
  dpkg-query -W -f '${binary:Package} ${source:Package} ${source:Version}\n' "$p" | head -1 |
    sed 's/:[a-z0-9]* / /'
}

# The text of file $1 under the heading $2.
file_block() {
  [ -f "$1" ] || die "$1: missing"
  printf -- '--- %s ---\n\n' "$2"
  cat "$1"
  # end on one empty line whatever the file's last line
  [ -z "$(tail -c1 "$1")" ] || echo
  echo
}

# The GCC Runtime Library Exception, as the GCC package's copyright file quotes it.
gcc_exception() {
  [ -f "$1" ] || die "$1: missing"
  local text
  text=$(awk '/^GCC RUNTIME LIBRARY EXCEPTION/ { on = 1 }
              on { print }
              on && /requirements of the license of GCC\.$/ { exit }' "$1")
  grep -q 'requirements of the license of GCC\.$' <<<"$text" ||
    die "$1: no GCC Runtime Library Exception text found"
  printf '%s\n' "$text"
}

# For one component and architecture, on fd 3 one "where from" line and on
# stdout the body (the notices' texts).
component_body() {
  local id=$1 arch=$2 deps=${deps_of[$2]} t f info
  case $id in
    openssl)
      t=$(source_tree "$deps" openssl)
      echo "$arch: Debian source package $(stamp_version "$deps" openssl)" >&3
      file_block "$t/LICENSE.txt" "LICENSE.txt"
      file_block "$t/debian/copyright" "debian/copyright" ;;
    libpq)
      t=$(source_tree "$deps" libpq)
      echo "$arch: Debian source package $(stamp_version "$deps" postgresql)" >&3
      file_block "$t/COPYRIGHT" "COPYRIGHT"
      file_block "$t/debian/copyright" "debian/copyright" ;;
    curl)
      t=$(source_tree "$deps" curl)
      echo "$arch: Debian source package $(stamp_version "$deps" curl)" >&3
      file_block "$t/COPYING" "COPYING"
      file_block "$t/debian/copyright" "debian/copyright" ;;
    musl)
      if [ -d "$deps/src/musl" ]; then
        # cross-compiled: the musl static-deps.sh built from Debian's source
        t=$(source_tree "$deps" musl)
        echo "$arch: Debian source package $(stamp_version "$deps" musl)" >&3
        file_block "$t/debian/copyright" "debian/copyright"
      else
        # the machine's own: Debian's musl-dev, which musl-gcc links
        f=$(linked_file "$arch" 'libc\.a')
        read -r -a info <<<"$(package_of "$f")"
        echo "$arch: Debian package ${info[0]}, source package ${info[1]} ${info[2]}" >&3
        file_block "/usr/share/doc/${info[0]}/copyright" "debian/copyright"
      fi ;;
    gcc)
      f=$(linked_file "$arch" 'crtbegin[A-Za-z]*\.o')
      read -r -a info <<<"$(package_of "$f")"
      echo "$arch: Debian package ${info[0]}, source package ${info[1]} ${info[2]}" >&3
      printf -- '--- GCC RUNTIME LIBRARY EXCEPTION (from debian/copyright) ---\n\n'
      printf '%s\n' "GCC's runtime files (crtbegin/crtend, libgcc) are under the GPL, version 3" \
        "or later, with this exception, which lets a program compiled with GCC be" \
        "distributed under its own terms; it asks for no notice. Its text:" ""
      gcc_exception "/usr/share/doc/${info[0]}/copyright"
      echo; echo ;;
    *) die "unknown component $id" ;;
  esac
}

# id|title|SPDX licence|what of it is linked
COMPONENTS=(
  "openssl|OpenSSL 3|Apache-2.0|libssl.a, libcrypto.a"
  "libpq|libpq, PostgreSQL's client library|PostgreSQL|libpq.a, libpgcommon_shlib.a, libpgport_shlib.a"
  "curl|libcurl|curl|libcurl.a"
  "musl|musl libc|MIT|libc.a and its start files (crt1.o or Scrt1.o, crti.o, crtn.o)"
  "gcc|GCC's runtime|GPL-3.0-or-later WITH GCC-exception-3.1|crtbegin*.o, crtend*.o, and any member of libgcc.a the link needs"
)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bandage-notices.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

cat <<EOF
THIRD_PARTY_NOTICES: bandage and the libraries its static binaries contain

bandage's release binaries (bandage-linux-amd64 and bandage-linux-arm64 in
dist/, the npm package pg-bandage, /bandage in the container image) are
statically linked: besides bandage's own code they contain the libraries
below. Each section names a library, its licence (SPDX identifier), the
Debian source it was built from for each architecture, and the notices of
that source, verbatim: the upstream licence file and Debian's
debian/copyright. scripts/third-party-notices.sh collects them at build time;
scripts/check-notices.sh fails the build when a library in the link has no
section here.

Architectures: $(printf '%s\n' "${arches[@]}" | paste -sd, | sed 's/,/, /g')

Contents:
  [bandage]  bandage itself: MIT
EOF
for c in "${COMPONENTS[@]}"; do
  IFS='|' read -r id title spdx _ <<<"$c"
  printf '  %-10s %s: %s\n' "[$id]" "$title" "$spdx"
done
echo

printf '%s\n[bandage] bandage: its own code\nSPDX-License-Identifier: MIT\n%s\n\n' "$RULE" "$RULE"
file_block "$repo/LICENSE" "LICENSE"

for c in "${COMPONENTS[@]}"; do
  IFS='|' read -r id title spdx what <<<"$c"
  : >"$tmp/where"; bodies=()
  for arch in "${arches[@]}"; do
    component_body "$id" "$arch" >"$tmp/body.$arch" 3>>"$tmp/where"
    sum=$(sha256sum <"$tmp/body.$arch" | cut -c1-64)
    [ -f "$tmp/arches.$sum" ] || bodies+=("$sum")
    if [ -f "$tmp/arches.$sum" ]; then sep=', '; else sep=''; fi
    printf '%s%s' "$sep" "$arch" >>"$tmp/arches.$sum"
    cp "$tmp/body.$arch" "$tmp/text.$sum"
  done
  printf '%s\n[%s] %s: %s\nSPDX-License-Identifier: %s\n' "$RULE" "$id" "$title" "$what" "$spdx"
  # "ARCH: where" lines; the same source on several architectures is one line
  awk '{ a = $1; sub(/:$/, "", a); t = substr($0, length($1) + 2)
         if (!(t in seen)) { seen[t] = a; order[++n] = t } else seen[t] = seen[t] ", " a }
       END { for (i = 1; i <= n; i++) print seen[order[i]] ": " order[i] }' "$tmp/where"
  printf '%s\n\n' "$RULE"
  for sum in "${bodies[@]}"; do
    [ ${#bodies[@]} -eq 1 ] || printf '### %s\n\n' "$(cat "$tmp/arches.$sum")"
    cat "$tmp/text.$sum"
  done
  rm -f "$tmp"/arches.* "$tmp"/text.*
done
