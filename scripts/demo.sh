#!/usr/bin/env bash
# make demo: a throwaway PostgreSQL in a temp dir, one reset with
# examples/prisma/schema.sql, the sample app under bandage, then everything stops.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bandage=${BANDAGE:-$repo/build/bandage}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bindir/initdb" ] || { echo "demo: PostgreSQL server binaries not found; run 'make deps'" >&2; exit 69; }

tmp=$(mktemp -d /tmp/bandage-demo.XXXXXX)
chmod 755 "$tmp"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  as_pg "$bindir/pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] && chown postgres "$tmp"

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
password=demo-$RANDOM$RANDOM
echo "$password" > "$tmp/pw"
[ "$(id -u)" -eq 0 ] && chown postgres "$tmp/pw"
echo "== a throwaway PostgreSQL on 127.0.0.1:$port ($tmp)"
as_pg "$bindir/initdb" -D "$tmp/data" -U postgres --pwfile="$tmp/pw" \
  --auth-local=trust --auth-host=scram-sha-256 >/dev/null
as_pg "$bindir/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -o \
  "-c port=$port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$tmp -c fsync=off" start >/dev/null &
# bandage itself waits for the server: it was started in the background.

# Each bandage command is printed before it runs, as you would type it.
show() { local line="$*"; echo "\$ ${line//$repo\//}"; "$@"; }

export DATABASE_URL="postgresql://postgres:$password@127.0.0.1:$port/postgres"
echo "\$ export DATABASE_URL=$DATABASE_URL"
echo "== bandage: wait, reset with examples/prisma/schema.sql, run examples/app.sh as PID 1"
set +e
show unshare --pid --fork --mount-proc "$bandage" --reset always --confirm-database postgres \
  --schema-file "$repo/examples/prisma/schema.sql" -- "$repo/examples/app.sh"
code=$?
set -e
echo "== bandage exited with $code (the app's exit code)"
echo "== a first start with --reset once and a new deployment id resets:"
show env BANDAGE_DEPLOYMENT_ID=demo-1 "$bandage" --reset once --confirm-database postgres \
  --schema-file "$repo/examples/prisma/schema.sql"
echo "== the second start with the same deployment id skips the reset:"
show env BANDAGE_DEPLOYMENT_ID=demo-1 "$bandage" --reset once --confirm-database postgres \
  --schema-file "$repo/examples/prisma/schema.sql"
exit "$code"
