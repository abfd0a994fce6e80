#!/usr/bin/env bash
# Does THIRD_PARTY_NOTICES have a section for every library the static link
# actually used?
#
#   scripts/check-notices.sh NOTICES LINK_INPUTS...
#
# LINK_INPUTS: the `ld -t -t` output of a static link (static.mk writes it
# beside each binary, build/static-ARCH/link-inputs): every object file and
# every archive member the linker took. Each is mapped to a library by its
# path (the table below); the check fails when
#   - a file belongs to no library the table knows (a new -l in static.mk, a
#     new toolchain file): say which library it is, and collect its notices in
#     scripts/third-party-notices.sh;
#   - a library the link used has no "[ID]" section in NOTICES.
# An archive the linker only looked into (no member taken) does not count.
# Exit 0 when every library has its section, 1 otherwise (each gap printed).
set -euo pipefail
export LC_ALL=C

[ $# -ge 2 ] || { echo "usage: $0 NOTICES LINK_INPUTS..." >&2; exit 2; }
notices=$1; shift
[ -f "$notices" ] || { echo "check-notices: $notices is missing" >&2; exit 1; }

# The library (notices section ID) a linked file belongs to, by its path:
# the C library and start files only from a musl directory (a glibc libc.a
# would be another library, with other notices), GCC's only from GCC's.
library_of() {
  case $1 in
    */static-*/obj/*.o|static-*/obj/*.o) echo bandage ;;
    */libssl.a|*/libcrypto.a) echo openssl ;;
    */libpq.a|*/libpgcommon_shlib.a|*/libpgport_shlib.a) echo libpq ;;
    */libcurl.a) echo curl ;;
    */libjansson.a) echo jansson ;;
    */libpg_query.a) echo libpg_query ;;
    *musl*/libc.a|*musl*/crt1.o|*musl*/Scrt1.o|*musl*/rcrt1.o|*musl*/crti.o|*musl*/crtn.o) echo musl ;;
    */gcc*/libgcc.a|*/gcc*/libgcc_eh.a|*/gcc*/crtbegin*.o|*/gcc*/crtend*.o) echo gcc ;;
    *) echo "" ;;
  esac
}

# Section IDs: the "[ID] ..." line right after a rule line of '='.
sections=$(awk 'prev ~ /^=+$/ && match($0, /^\[[a-z0-9_-]+\] /) {
                  print substr($0, 2, RLENGTH - 3) } { prev = $0 }' "$notices" | sort -u)

errors=0
for inputs in "$@"; do
  [ -f "$inputs" ] || { echo "check-notices: $inputs is missing (the static link writes it)" >&2; exit 1; }
  # "(archive)member" lines: that archive was used; plain lines: an object
  # file (an archive named alone was only searched).
  used=$(sed -n 's/^(\(.*\)).*/\1/p; /^[^(].*\.a$/d; /^[^(]/p' "$inputs" | sort -u)
  [ -n "$used" ] || { echo "check-notices: $inputs lists no input" >&2; exit 1; }
  declare -A libs=()
  while IFS= read -r f; do
    lib=$(library_of "$f")
    if [ -z "$lib" ]; then
      echo "check-notices: $inputs: the link used $f, which belongs to no known library:" \
           "add it to scripts/check-notices.sh and its notices to scripts/third-party-notices.sh" >&2
      errors=$((errors + 1)); continue
    fi
    libs[$lib]+="${libs[$lib]:+ }${f##*/}"
  done <<<"$used"
  for lib in $(printf '%s\n' "${!libs[@]}" | sort); do
    files=$(tr ' ' '\n' <<<"${libs[$lib]}" | sort -u | sed -n '1,4p' | tr '\n' ' ')
    if grep -qx "$lib" <<<"$sections"; then
      echo "check-notices: $inputs: [$lib] ${files% }: has its notice"
    else
      echo "check-notices: $inputs: the link used $lib (${files% }) but $notices has no [$lib] section" >&2
      errors=$((errors + 1))
    fi
  done
  unset libs
done
if [ "$errors" -gt 0 ]; then
  echo "check-notices: $errors library(ies) without a notice" >&2
  exit 1
fi
echo "check-notices: $notices covers every library of the link"
