#!/usr/bin/env bash
# Build the offline Debian 12 base image (default tb/base:bookworm) with no
# container registry: mmdebstrap makes a minbase rootfs tarball from Debian
# packages, `docker import` turns it into an image.
#
# Idempotent: the image carries the label org.hatestbed.base-hash, a hash of
# the recipe block below (package list, mmdebstrap options, import options).
# When an image with that hash exists the build is skipped; editing anything
# outside the block (messages, checks, comments above) does not rebuild.
#
# Environment:
#   BASE_IMAGE      image name to produce          (default tb/base:bookworm)
#   DEBIAN_MIRROR   Debian mirror                  (default http://deb.debian.org/debian)
#   DEBIAN_SECURITY Debian security mirror         (default http://deb.debian.org/debian-security)
#   FORCE=1         rebuild even when up to date (e.g. to pick up Debian updates)
set -euo pipefail

IMAGE=${BASE_IMAGE:-tb/base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
HASH_LABEL=org.hatestbed.base-hash

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
images_dir=$(dirname "$here")
cache_dir="$images_dir/.cache"

log() { printf '[base] %s\n' "$*" >&2; }
die() { printf '[base] ERROR: %s\n' "$*" >&2; exit 1; }

# >>> recipe (hashed into org.hatestbed.base-hash: any change here rebuilds)
SUITE=bookworm

# Everything the testbed's images need from Debian. The host/tmedia/sipp
# Dockerfiles install the subset they need only when it is missing (so they
# also work on top of debian:bookworm-slim).
PACKAGES=(
    python3 python3-venv
    iproute2 nftables iptables
    mariadb-server mariadb-client
    sip-tester
    tini procps iputils-ping tcpdump netcat-openbsd ca-certificates
    keepalived
    openssh-server
)

# make_rootfs TARBALL
# Notes:
# - mmdebstrap (root mode) replaces /usr/sbin/policy-rc.d and start-stop-daemon
#   while installing, so mariadb-server's postinst initialises /var/lib/mysql
#   (mariadb-install-db) but starts no server in the chroot. The hooks check
#   that no process was left running in the chroot and that the datadir exists.
# - The final cleanup step removes apt lists and the .deb cache; the dpkg
#   path-excludes keep man pages, docs and translations out (as the official
#   slim images do). They stay in /etc/dpkg/dpkg.cfg.d so later installs follow.
# - stdin is /dev/null so that mmdebstrap never reads a sources.list from it.
make_rootfs() {
    mmdebstrap \
        --variant=minbase \
        --include="$(IFS=,; echo "${PACKAGES[*]}")" \
        --aptopt='APT::Install-Recommends "false"' \
        --aptopt='Acquire::Retries "3"' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        --dpkgopt='path-exclude=/usr/share/lintian/*' \
        --customize-hook='r=$(readlink -f "$1"); for p in /proc/[0-9]*; do if [ "$(readlink "$p/root" 2>/dev/null)" = "$r" ]; then echo "a process was left running in the chroot: $(cat "$p/comm")" >&2; exit 1; fi; done' \
        --customize-hook='test -d "$1/var/lib/mysql/mysql" || { echo "mariadb-server postinst did not initialise /var/lib/mysql" >&2; exit 1; }' \
        --customize-hook='chroot "$1" python3 -m venv --help >/dev/null' \
        --customize-hook='rm -rf "$1"/var/cache/apt/*.bin "$1"/var/log/apt/* "$1"/root/.cache' \
        "$SUITE" "$1" \
        "deb $MIRROR $SUITE main" \
        "deb $MIRROR $SUITE-updates main" \
        "deb $SECURITY $SUITE-security main" \
        </dev/null
}

# import_rootfs TARBALL HASH
import_rootfs() {
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["bash"]' \
        --change 'LABEL org.hatestbed=1' \
        --change "LABEL $HASH_LABEL=$2" \
        --change "LABEL org.hatestbed.base-packages=\"$(IFS=,; echo "${PACKAGES[*]}")\"" \
        --message "mmdebstrap --variant=minbase $SUITE (hatestbed base $2)" \
        "$1" "$IMAGE" >/dev/null
}
# <<< recipe

hash=$(sed -n '/^# >>> recipe/,/^# <<< recipe/p' "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)

# is_base ID: the image is a base built by this script (one layer, as
# `docker import` makes). Images built FROM it inherit its labels, so the
# label alone does not say it.
is_base() {
    [[ $(docker image inspect "$1" --format '{{len .RootFS.Layers}}' 2>/dev/null) == 1 ]]
}

command -v docker >/dev/null 2>&1 || die "docker is not installed"
docker info >/dev/null 2>&1 || die "cannot talk to the Docker daemon (is it running? are you allowed to use it?)"

if [[ "${FORCE:-0}" != 1 ]]; then
    current=$(docker image inspect "$IMAGE" \
        --format "{{ index .Config.Labels \"$HASH_LABEL\" }}" 2>/dev/null || true)
    if [[ "$current" == "$hash" ]] && is_base "$IMAGE"; then
        log "$IMAGE is up to date ($HASH_LABEL=$hash)"
        exit 0
    fi
    # A base built from this very recipe may exist under no or another tag.
    for id in $(docker images -a -q --no-trunc --filter "label=$HASH_LABEL=$hash" | sort -u); do
        if is_base "$id"; then
            docker tag "$id" "$IMAGE"
            log "$IMAGE is up to date (re-tagged existing image ${id:7:12}, $HASH_LABEL=$hash)"
            exit 0
        fi
    done
fi

if ! command -v mmdebstrap >/dev/null 2>&1; then
    die "mmdebstrap is not installed. Install it with:  apt-get install mmdebstrap
        (Debian/Ubuntu package; 'make images' does this itself when run as root)"
fi

mkdir -p "$cache_dir"
workdir=$(mktemp -d "$cache_dir/base.XXXXXX")
trap 'rm -rf "$workdir"' EXIT
tarball="$workdir/rootfs.tar"

log "building $IMAGE from Debian $SUITE (hash $hash)"
log "packages: ${PACKAGES[*]}"
make_rootfs "$tarball"

log "importing $tarball ($(du -h "$tarball" | cut -f1)) as $IMAGE"
import_rootfs "$tarball" "$hash"
log "built $IMAGE ($(docker image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}'))"
