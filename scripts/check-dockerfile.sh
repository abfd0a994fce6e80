#!/usr/bin/env bash
# Checks the Dockerfile without a Docker engine (CI has none):
#
#   scripts/check-dockerfile.sh [DOCKERFILE [CONTEXT]]
#
# DOCKERFILE defaults to the repository's, CONTEXT (the build context) to the
# DOCKERFILE's directory.
#
# - it has a builder stage FROM debian:bookworm that runs `make static`, and a
#   final stage FROM scratch (with no RUN: there is no shell in it) whose
#   ENTRYPOINT is ["/bandage"] and which holds /bandage, the notices of the
#   libraries it contains at /THIRD_PARTY_NOTICES and the CA bundle at
#   /etc/ssl/certs/ca-certificates.crt;
# - every COPY/ADD source exists: from the build context, a path of the
#   repository not excluded by .dockerignore; with --from=STAGE, an EARLIER
#   stage's known output: a path that stage copied in from the repository, the
#   binary and notices `make static` writes there (build/bandage-static and
#   build/THIRD_PARTY_NOTICES under the stage's WORKDIR, read from static.mk),
#   or the CA bundle when that stage installed
#   the ca-certificates package;
# - the Dockerfile's usage comment shows how an app image takes the binary.
# Exit 0 when all hold; otherwise every failed check is printed and it exits 1.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dockerfile=${1:-$repo/Dockerfile}
[ -f "$dockerfile" ] || { echo "check-dockerfile: $dockerfile: no such file" >&2; exit 1; }
context=$(cd "${2:-$(dirname "$dockerfile")}" && pwd)

BUNDLE=/etc/ssl/certs/ca-certificates.crt
# The path `make static` writes, relative to the repository (static.mk's STATIC_BIN).
static_bin=$(make -s -C "$repo" -pn static-clean 2>/dev/null |
             awk '$1 == "STATIC_BIN" && ($2 == ":=" || $2 == "=") && !v {v = $3} END {print v}' || true)
static_bin=${static_bin:-build/bandage-static}
static_notices=$(make -s -C "$repo" -pn static-clean 2>/dev/null |
             awk '$1 == "STATIC_NOTICES" && ($2 == ":=" || $2 == "=") && !v {v = $3} END {print v}' || true)
static_notices=${static_notices:-build/THIRD_PARTY_NOTICES}
NOTICES=/THIRD_PARTY_NOTICES

errors=0
fail() { echo "check-dockerfile: $dockerfile:$*" >&2; errors=$((errors + 1)); }
note() { echo "check-dockerfile: $*"; }

# --- instructions: comments dropped, continuation lines joined --------------------
# One line per instruction: "LINE<TAB>KEYWORD<TAB>ARGUMENTS".
instructions=$(awk '
  function flush() { if (text != "") { print start "\t" text }; text = ""; cont = 0 }
  {
    line = $0; sub(/\r$/, "", line)
    if (!cont && line ~ /^[ \t]*#/) next          # a comment (or parser directive)
    if (cont && line ~ /^[ \t]*#/) next           # comments inside a continuation
    if (!cont && line ~ /^[ \t]*$/) next
    if (!cont) start = NR
    piece = line; more = 0
    if (piece ~ /\\[ \t]*$/) { sub(/\\[ \t]*$/, "", piece); more = 1 }
    text = text (cont ? " " : "") piece
    cont = more
    if (!cont) flush()
  }
  END { flush() }' "$dockerfile" |
  awk -F'\t' '{ line = $1; rest = $2; sub(/^[ \t]+/, "", rest)
               kw = rest; sub(/[ \t].*/, "", kw); args = substr(rest, length(kw) + 1)
               sub(/^[ \t]+/, "", args)
               print line "\t" toupper(kw) "\t" args }')

# --- .dockerignore ----------------------------------------------------------------
ignore_patterns=()
if [ -f "$context/.dockerignore" ]; then
  while IFS= read -r p || [ -n "$p" ]; do
    p=${p%%$'\r'}
    [[ -z "${p// }" || $p == \#* || $p == !* ]] && continue
    p=${p#/}; p=${p%/}
    ignore_patterns+=("$p")
  done <"$context/.dockerignore"
fi

ignored() {  # is context-relative path $1 (or a parent of it) excluded?
  local path=$1 pat prefix
  for pat in "${ignore_patterns[@]}"; do
    prefix=$path
    while :; do
      # shellcheck disable=SC2053 # glob match on purpose
      [[ $prefix == $pat || ( $pat == \*\*/* && ( $prefix == ${pat#\*\*/} || $prefix == */${pat#\*\*/} ) ) ]] && return 0
      [[ $prefix == */* ]] || break
      prefix=${prefix%/*}
    done
  done
  return 1
}

# --- stages -------------------------------------------------------------------------
# Per stage i: image, name, workdir, RUN text, and outputs: "path" lines meaning
# that absolute path exists in the stage, and "dir<TAB>repo-path" lines meaning
# the directory holds the repository path's contents.
stage_count=0
declare -a st_image st_name st_runs st_outputs st_entry st_line st_bin
workdir=/

resolve() {  # an image path: absolute as is, else under the current WORKDIR
  case $1 in
    /*) printf '%s\n' "$1" ;;
    *) local w=${workdir%/}; printf '%s/%s\n' "$w" "${1#./}" ;;
  esac | sed -E 's#/\.?$##; s#/\./#/#g; s#^$#/#'
}

find_stage() {  # index of stage named (or numbered) $1 among the first $2 stages, or -1
  local want=$1 n=$2 i
  for ((i = 0; i < n; i++)); do
    [[ ${st_name[i]} == "$want" || "$i" == "$want" ]] && { echo "$i"; return; }
  done
  echo -1
}

stage_has() {  # does stage $1 hold absolute path $2?
  local s=$1 path=$2 line dir rel
  while IFS= read -r line; do
    [ -z "$line" ] && continue
    if [[ $line == dir$'\t'* ]]; then
      IFS=$'\t' read -r _ dir rel <<<"$line"
      if [[ $path == "$dir" ]]; then return 0; fi
      if [[ $path == "$dir"/* ]]; then
        local sub=${path#"$dir"/}
        [ -e "$context/${rel:+$rel/}$sub" ] && ! ignored "${rel:+$rel/}$sub" && return 0
      fi
    elif [[ $line == "$path" || $path == "$line"/* ]]; then
      return 0
    fi
  done <<<"${st_outputs[s]}"
  return 1
}

# COPY/ADD arguments, in exec (JSON) form or shell form, one per line.
split_args() {
  local a=$1
  if [[ $a == \[* ]]; then
    /usr/bin/python3 -c 'import json,sys; print("\n".join(json.loads(sys.argv[1])))' "$a" 2>/dev/null \
      || return 1
  else
    # shellcheck disable=SC2086 # word splitting is the point; no globbing
    (set -f; printf '%s\n' $a)
  fi
}

while IFS=$'\t' read -r lineno keyword args; do
  [ -z "$keyword" ] && continue
  case $keyword in
    FROM)
      read -r -a w <<<"$args"
      img="" name=""
      for ((k = 0; k < ${#w[@]}; k++)); do
        case ${w[k]} in
          --*) ;;
          [Aa][Ss]) name=${w[k + 1]:-}; break ;;
          *) [ -z "$img" ] && img=${w[k]} ;;
        esac
      done
      st_image[stage_count]=$img; st_name[stage_count]=$name; st_runs[stage_count]=""
      st_outputs[stage_count]=""; st_entry[stage_count]=""; st_line[stage_count]=$lineno
      st_bin[stage_count]=""
      # A stage built on an earlier stage inherits its outputs.
      prev=$(find_stage "$img" "$stage_count")
      [ "$prev" -ge 0 ] && st_outputs[stage_count]=${st_outputs[prev]}
      stage_count=$((stage_count + 1)); workdir=/
      ;;
    WORKDIR)
      [ "$stage_count" -gt 0 ] || { fail "$lineno: WORKDIR before FROM"; continue; }
      workdir=$(resolve "$args")
      ;;
    RUN)
      [ "$stage_count" -gt 0 ] || { fail "$lineno: RUN before FROM"; continue; }
      s=$((stage_count - 1))
      st_runs[s]+="$args"$'\n'
      if grep -Eq '(^|[;&|( ])make( +-[-A-Za-z0-9=]+)*( +[A-Za-z0-9_-]+)* +static( |$|;|&|\))' <<<"$args"; then
        st_bin[s]=$(resolve "$static_bin")
        st_outputs[s]+="${st_bin[s]}"$'\n'"$(resolve "$static_notices")"$'\n'
      fi
      if grep -Eq 'apt-get +(-[^ ]+ +)*install .*(^| )ca-certificates( |$)' <<<"$args"; then
        st_outputs[s]+="$BUNDLE"$'\n'
      fi
      ;;
    COPY|ADD)
      [ "$stage_count" -gt 0 ] || { fail "$lineno: $keyword before FROM"; continue; }
      s=$((stage_count - 1))
      from=""; rest=$args
      while [[ $rest == --* ]]; do
        flag=${rest%%[ $'\t']*}; rest=${rest#"$flag"}; rest=${rest#"${rest%%[! $'\t']*}"}
        case $flag in --from=*) from=${flag#--from=} ;; esac
      done
      if ! mapfile -t parts < <(split_args "$rest") || [ ${#parts[@]} -lt 2 ]; then
        fail "$lineno: $keyword needs at least one source and a destination: $args"; continue
      fi
      dest=${parts[-1]}; unset 'parts[-1]'
      dest_abs=$(resolve "$dest")
      multi=0; [ ${#parts[@]} -gt 1 ] && multi=1
      src_stage=-1
      if [ -n "$from" ]; then
        src_stage=$(find_stage "$from" "$s")
        if [ "$src_stage" -lt 0 ]; then
          if [ "$(find_stage "$from" "$stage_count")" -ge 0 ]; then
            fail "$lineno: $keyword --from=$from names a later stage (or this one)"
          else
            fail "$lineno: $keyword --from=$from: not a stage of this Dockerfile (an external image cannot be checked here)"
          fi
          continue
        fi
      fi
      for src in "${parts[@]}"; do
        if [ "$src_stage" -ge 0 ]; then
          sabs=$(resolve "$src")
          [[ $src == /* ]] || sabs=$(workdir=/ resolve "$src")
          if ! stage_has "$src_stage" "$sabs"; then
            fail "$lineno: $keyword --from=$from $src: not a known output of stage '$from' (line ${st_line[src_stage]})"
            continue
          fi
          if [[ $dest == */ || $multi == 1 ]]; then out="${dest_abs%/}/$(basename "$sabs")"; else out=$dest_abs; fi
          st_outputs[s]+="$out"$'\n'
        else
          rel=${src#./}; rel=${rel%/}; [ "$rel" = . ] && rel=""
          if [[ $src == http://* || $src == https://* ]]; then
            fail "$lineno: $keyword $src: remote sources are not allowed"; continue
          fi
          shopt -s nullglob dotglob
          # shellcheck disable=SC2206 # glob expansion of the source pattern
          globbed=( $context/${rel:-.} )
          shopt -u nullglob dotglob
          matches=()
          for m in "${globbed[@]}"; do [ -e "$m" ] && matches+=("$m"); done
          if [[ $rel == /* || $rel == ../* ]]; then
            fail "$lineno: $keyword $src: outside the build context"; continue
          fi
          if [ ${#matches[@]} -eq 0 ]; then
            fail "$lineno: $keyword $src: no such path in the build context ($context)"; continue
          fi
          if [ -n "$rel" ] && ignored "$rel"; then
            fail "$lineno: $keyword $src: excluded by .dockerignore"; continue
          fi
          if [ -z "$rel" ] || [ -d "$context/$rel" ]; then
            # a directory's contents go into dest
            st_outputs[s]+="dir"$'\t'"$dest_abs"$'\t'"$rel"$'\n'
          elif [[ $dest == */ || $multi == 1 || ${#matches[@]} -gt 1 ]]; then
            for m in "${matches[@]}"; do st_outputs[s]+="${dest_abs%/}/$(basename "$m")"$'\n'; done
          else
            st_outputs[s]+="$dest_abs"$'\n'
          fi
        fi
      done
      ;;
    ENTRYPOINT)
      [ "$stage_count" -gt 0 ] && st_entry[stage_count - 1]=$args
      ;;
  esac
done <<<"$instructions"

# --- what the image must be --------------------------------------------------------
if [ "$stage_count" -lt 2 ]; then
  fail " $stage_count stage(s): a builder stage and a final FROM scratch stage are needed"
else
  last=$((stage_count - 1))
  builder=-1
  for ((i = 0; i < last; i++)); do
    if grep -Eq '(^|[;&|( ])make( +-[-A-Za-z0-9=]+)*( +[A-Za-z0-9_-]+)* +static( |$|;|&|\))' <<<"${st_runs[i]}"; then
      builder=$i
    fi
  done
  if [ "$builder" -lt 0 ]; then
    fail " no stage before the last runs \`make static\`"
  else
    [[ ${st_image[builder]} == debian:bookworm* ]] ||
      fail "${st_line[builder]}: the builder stage is FROM ${st_image[builder]}, expected debian:bookworm"
    note "builder: stage ${st_name[builder]:-$builder} FROM ${st_image[builder]} (line ${st_line[builder]}) runs make static -> ${st_bin[builder]}"
  fi
  [ "${st_image[last]}" = scratch ] ||
    fail "${st_line[last]}: the final stage is FROM ${st_image[last]}, expected scratch"
  [ -z "${st_runs[last]}" ] || fail "${st_line[last]}: RUN in the final (scratch) stage: it has no shell"
  stage_has "$last" /bandage || fail "${st_line[last]}: the final stage does not hold /bandage"
  stage_has "$last" "$BUNDLE" || fail "${st_line[last]}: the final stage does not hold $BUNDLE"
  stage_has "$last" "$NOTICES" ||
    fail "${st_line[last]}: the final stage does not hold $NOTICES (the notices of the libraries /bandage contains, beside it)"
  entry=$(tr -d ' \t' <<<"${st_entry[last]}")
  [ "$entry" = '["/bandage"]' ] ||
    fail "${st_line[last]}: the final stage's ENTRYPOINT is '${st_entry[last]}', expected [\"/bandage\"] (exec form)"
fi

grep -Eq '^#.*COPY --from=[^ ]+ /bandage /usr/local/bin/bandage' "$dockerfile" ||
  fail "1: the usage comment (COPY --from=<image> /bandage /usr/local/bin/bandage) is missing"
grep -Eq '^#.*ENTRYPOINT \["bandage", "--"\]' "$dockerfile" ||
  fail "1: the usage comment (ENTRYPOINT [\"bandage\", \"--\"]) is missing"

if [ "$errors" -gt 0 ]; then
  echo "check-dockerfile: $errors problem(s)" >&2
  exit 1
fi
note "$dockerfile: $stage_count stages, final FROM scratch with /bandage, $NOTICES and the CA bundle: ok"
