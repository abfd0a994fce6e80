#!/usr/bin/env bash
# Makes the `debian:bookworm` image the Dockerfile's builder stage starts
# FROM, where no registry can be reached: debootstrap (minbase) from this
# machine's own Debian mirror, then `podman import`.
#
#   scripts/debian-base-image.sh TARBALL [PODMAN...]
#
# TARBALL: where the root file system is kept as a tar (a cache: when it
# exists, debootstrap is skipped). PODMAN: the podman command line to import
# with (default: podman), e.g. `podman --root DIR --runroot DIR
# --storage-driver vfs`); an image of that name already there is kept. The mirror is the first `deb` source of /etc/apt
# (DEBIAN_MIRROR overrides it); the suite is bookworm (DEBIAN_SUITE).
# Needs root (debootstrap) and the debootstrap package.
set -euo pipefail

die() { echo "debian-base-image: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: $0 TARBALL [PODMAN...]"
tarball=$1; shift
podman=("$@"); [ ${#podman[@]} -gt 0 ] || podman=(podman)
suite=${DEBIAN_SUITE:-bookworm}

# The first `deb` URI of /etc/apt: a deb822 *.sources stanza whose Types has
# deb, or a one-line `deb URI SUITE ...` entry; security mirrors are skipped.
apt_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
         { deb = 0; uri = ""
           for (i = 1; i <= NF; i++) {
             if ($i ~ /^Types:/ && $i ~ /[ \t]deb([ \t]|$)/) deb = 1
             if ($i ~ /^URIs:/) { split($i, w, /[ \t]+/); uri = w[2] } }
           if (deb && uri != "" && uri !~ /security/) { print uri; exit } }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" && $2 !~ /^\[/ && $2 !~ /security/ && $2 ~ /debian/ { print $2 }' "$f"
  done
}

if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"
  [ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
  # (not `| head -n1`: under pipefail, apt_mirror's SIGPIPE would end the script)
  mirror=${DEBIAN_MIRROR:-$(apt_mirror | awk 'NR == 1')}
  [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt; set DEBIAN_MIRROR"
  rootfs=$(mktemp -d "${TMPDIR:-/tmp}/debian-rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  echo "debian-base-image: debootstrap --variant=minbase $suite from $mirror"
  debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 ||
    { tail -n 20 "$rootfs.log" >&2; rm -f "$rootfs.log"; die "debootstrap failed"; }
  rm -f "$rootfs.log"
  # As a registry image would be: no package lists, no apt cache.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
  mkdir -p "$(dirname "$tarball")"
  tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
fi
if "${podman[@]}" image exists "debian:$suite"; then
  echo "debian-base-image: debian:$suite is already in podman's storage"
  exit 0
fi
echo "debian-base-image: podman import $tarball debian:$suite"
"${podman[@]}" import --change 'CMD ["bash"]' "$tarball" "debian:$suite" >/dev/null
"${podman[@]}" image exists "debian:$suite" || die "debian:$suite is not in podman's storage"
