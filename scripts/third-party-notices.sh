#!/usr/bin/env bash
# THIRD_PARTY_NOTICES: the licence and copyright notices of everything the
# static release binaries contain, collected from the very sources the build
# compiled (scripts/static-deps.sh's Debian source trees, and libpg_query's
# pinned upstream tarball) or, for what the toolchain itself links in (the
# amd64 musl, GCC's crtbegin/crtend), from the Debian package that installed
# the linked file. libpg_query's section is there only when the link used it
# (a STATIC_PG_QUERY=0 build has none).
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

# The members of the archive named $2 (its file name) that $1's link took,
# sorted; nothing when the link took none.
linked_members() {
  awk -v a="$2" 'match($0, /^\(.*\)/) {
                   ar = substr($0, 2, RLENGTH - 2); n = split(ar, p, "/")
                   if (p[n] == a) print substr($0, RLENGTH + 1) }' "${inputs_of[$1]}" | sort -u
}

# Does component $1 go into architecture $2's binary? libpg_query only when
# the link took a member of it; the others always.
component_linked() {
  case $1 in
    libpg_query) [ -n "$(linked_members "$2" libpg_query.a)" ] ;;
    *) return 0 ;;
  esac
}

# The source file, in libpg_query's tree $1, of archive member $2
# (src_backend_parser_gram.o: src/postgres/src_backend_parser_gram.c).
pg_query_source_of() {
  local f
  f=$(find "$1/src" "$1/vendor" "$1/protobuf" -name "${2%.o}.c" 2>/dev/null | sort)
  if [ -z "$f" ] || [ "$(wc -l <<<"$f")" -ne 1 ]; then
    die "$1: no single source file for the linked member $2"
  fi
  printf '%s\n' "$f"
}

# libpg_query's notices for architecture $1 from its tree $2: its own
# licence and README's licence statement, the copyright lines of every
# linked file (its PostgreSQL files are under the PostgreSQL licence:
# PostgreSQL's COPYRIGHT, from libpq's source tree $3), and, verbatim, the
# licence comment of a linked file that carries its own (a vendored library,
# a BSD-licensed file of PostgreSQL's).
pg_query_notices() {
  local arch=$1 t=$2 pgsrc=$3 m f text files=()
  while IFS= read -r m; do
    files+=("$(pg_query_source_of "$t" "$m")")
  done < <(linked_members "$arch" libpg_query.a)
  file_block "$t/LICENSE" "LICENSE (libpg_query's own code: BSD-3-Clause)"
  printf -- '--- README.md, its "License" section ---\n\n'
  awk '/^## License/ { on = 1; next } on && /^## / { exit } on' "$t/README.md" |
    sed 's/<br>$//' | sed -e '/./,$!d' -e :a -e '/^\n*$/{$d;N;ba' -e '}'
  echo
  printf -- '--- the copyright lines of the linked files (%s files) ---\n\n' "${#files[@]}"
  # (a file's notices are in its first lines: libpg_query's own header, then
  # the original file's)
  for f in "${files[@]}"; do
    sed -nE '1,150 { /Copyright \(c\)/ { s/^[[:space:]/*]*//; s/[[:space:]]+$//; p } }' "$f"
  done | sort -u
  echo
  file_block "$pgsrc/COPYRIGHT" \
    "COPYRIGHT (the PostgreSQL licence, as PostgreSQL's source states it; that of the files above that PostgreSQL wrote)"
  for f in "${files[@]}"; do
    # the comment that holds a licence of its own, from its first line to its end
    # (awk reads the file itself: an early exit must not cut a pipe)
    text=$(awk 'NR > 150 { exit } /^\/\*/ { buf = ""; on = 1 } on { buf = buf $0 "\n" }
      on && /\*\// { on = 0; if (buf ~ /Redistribution and use/) { printf "%s", buf; exit } }' "$f")
    [ -n "$text" ] || continue
    printf -- '--- %s: its own licence ---\n\n%s\n\n' "${f#"$t"/}" "$text"
  done
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
    libpg_query)
      t=$(source_tree "$deps" libpg_query)
      echo "$arch: $(stamp_version "$deps" libpg-query), pganalyze's release as the Debian archive holds it (upstream tarball, no Debian changes)" >&3
      pg_query_notices "$arch" "$t" "$(source_tree "$deps" libpq)" ;;
    jansson)
      t=$(source_tree "$deps" jansson)
      echo "$arch: Debian source package $(stamp_version "$deps" jansson)" >&3
      file_block "$t/LICENSE" "LICENSE"
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
  "jansson|jansson, a JSON library|MIT|libjansson.a: the JSON reader and writer"
  "libpg_query|libpg_query, PostgreSQL's parser as a library|BSD-3-Clause AND PostgreSQL AND BSD-2-Clause|libpg_query.a: the parser, its scanner and the JSON output"
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
debian/copyright (libpg_query, an upstream tarball with no debian/ of its
own: its licence, the copyright lines of the files linked and the licences
they refer to). scripts/third-party-notices.sh collects them at build time;
scripts/check-notices.sh fails the build when a library in the link has no
section here.

Architectures: $(printf '%s\n' "${arches[@]}" | paste -sd, | sed 's/,/, /g')

Contents:
  [bandage]     bandage itself: MIT
EOF
# Each component with the architectures whose binary has it.
declare -A arches_of
for c in "${COMPONENTS[@]}"; do
  IFS='|' read -r id _ <<<"$c"
  for arch in "${arches[@]}"; do
    if component_linked "$id" "$arch"; then arches_of[$id]+="${arches_of[$id]:+ }$arch"; fi
  done
done
for c in "${COMPONENTS[@]}"; do
  IFS='|' read -r id title spdx _ <<<"$c"
  [ -n "${arches_of[$id]:-}" ] || continue
  printf '  %-13s %s: %s\n' "[$id]" "$title" "$spdx"
done
echo

printf '%s\n[bandage] bandage: its own code\nSPDX-License-Identifier: MIT\n%s\n\n' "$RULE" "$RULE"
file_block "$repo/LICENSE" "LICENSE"

for c in "${COMPONENTS[@]}"; do
  IFS='|' read -r id title spdx what <<<"$c"
  [ -n "${arches_of[$id]:-}" ] || continue
  : >"$tmp/where"; bodies=()
  for arch in ${arches_of[$id]}; do
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
