#!/usr/bin/env bash
# The README's settings table must be what `bandage --help-markdown` prints.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bandage=${BANDAGE:-$repo/build/bandage}
diff -u <(sed -n '/<!-- settings:begin -->/,/<!-- settings:end -->/p' "$repo/README.md" | sed '1d;$d') \
        <("$bandage" --help-markdown) \
  || { echo "README.md settings table is stale: regenerate it with 'bandage --help-markdown'" >&2; exit 1; }
echo "README settings table matches --help-markdown"
