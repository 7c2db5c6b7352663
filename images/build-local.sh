#!/usr/bin/env bash
# Build gr2-cpu and gr2-serve on a machine that reaches package indexes but no image registry (`make images`),
# tagged as the project names them (components/image.py, gr2.serve.deploy). PYTHON: the project's Python.
#   images/build-local.sh [cpu] [serve]      # both when none is named
# - The base image is Debian bookworm made here with debootstrap (python3 3.11 from Debian), not the
#   Dockerfiles' default python:3.11.13-slim-bookworm, which would need a registry.
# - The local folders this machine's pip configuration names (find-links, file:// indexes: the CPU torch
#   wheel among them) are served read-only on a loopback port for the build, which runs on the host network.
# - The CA bundle that pip uses here is passed as a build secret: the intercepting proxy's CA reaches
#   the pip steps and no layer.
# It prints each image's build time and size, then removes the untagged images that earlier builds left.
# Needs root (or a running engine) and Debian's docker client.
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=${DOCKER:-/usr/bin/docker}
BASE_TAG=${GR2_LOCAL_BASE:-gr2-local/python-bookworm:3.11}
PYTHON=${PYTHON:-.venv/bin/python}
CPU_TAG=$("$PYTHON" -c 'from components.image import BASE_IMAGE; print(BASE_IMAGE)')
SERVE_TAG=$("$PYTHON" -c 'from gr2.serve.deploy import SERVE_IMAGE; print(SERVE_IMAGE)')
# the label `gr2 run --runner docker` compares with the checkout before it runs anything in the images
SOURCE_LABEL=$("$PYTHON" -c 'from pipelines.runners import SOURCE_LABEL, source_digest; print(f"{SOURCE_LABEL}={source_digest()}")')

have_image() {
    "$DOCKER" image inspect "$1" >/dev/null 2>&1
}

make_base() {
    have_image "$BASE_TAG" && return 0
    command -v debootstrap >/dev/null || apt-get install -y -q --no-install-recommends debootstrap >/dev/null
    local rootfs
    rootfs=$(mktemp -d)
    echo "base: debootstrap bookworm into $rootfs" >&2
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,python-is-python3 \
        bookworm "$rootfs" >/dev/null
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    # --one-file-system: never into a /proc or /sys that debootstrap left mounted
    tar --one-file-system -C "$rootfs" -c . | "$DOCKER" import - "$BASE_TAG" >/dev/null
    rm -rf --one-file-system "$rootfs"
}

pip_setting() {
    "$PYTHON" -m pip config list 2>/dev/null | sed -n "s/^\(global\|:env:\)\.$1='\(.*\)'$/\2/p" | head -n 1
}

ca_bundle() {
    local cert
    cert=$(pip_setting cert)
    echo "${cert:-/etc/ssl/certs/ca-certificates.crt}"
}

# link FOLDER into the served tree ROOT at its own path
expose() {
    local root=$1 folder=$2
    [ -e "$root$folder" ] || { mkdir -p "$root$(dirname "$folder")" && ln -s "$folder" "$root$folder"; }
}

# Serve the local folders of pip's configuration under their own paths on a loopback port; print the
# server's pid, then the pip settings (PIP_FIND_LINKS=..., PIP_EXTRA_INDEX_URL=...) that point at them.
serve_local_packages() {
    local root=$1 port=$2 find_links="" indexes="" location folder
    for location in $(pip_setting find-links); do
        folder=${location#file://}
        [ -d "$folder" ] || continue
        expose "$root" "$folder"
        find_links+=" http://127.0.0.1:$port$folder/"
    done
    for location in $(pip_setting extra-index-url); do
        folder=${location#file://}
        [ "$folder" != "$location" ] && [ -d "$folder" ] || continue
        expose "$root" "$(dirname "$folder")"  # an index's pages may link to files beside it (../../files)
        indexes+=" http://127.0.0.1:$port$folder/"
    done
    "$PYTHON" -m http.server --bind 127.0.0.1 --directory "$root" "$port" >/dev/null 2>&1 &
    echo "$!"
    echo "PIP_FIND_LINKS=${find_links# }"
    echo "PIP_EXTRA_INDEX_URL=${indexes# }"
}

# The port is part of the build arguments, hence of the build cache's keys: a fixed one keeps the pip layers
# cached from one `make images` to the next.
PACKAGES_PORT=${GR2_PACKAGES_PORT:-47391}

check_port_free() {
    "$PYTHON" -c "import socket; socket.socket().bind(('127.0.0.1', $1))" 2>/dev/null \
        || { echo "images: 127.0.0.1:$1 is taken; set GR2_PACKAGES_PORT to a free port" >&2; exit 1; }
}

wait_for_port() {
    for _ in $(seq 50); do
        "$PYTHON" -c "import socket; socket.create_connection(('127.0.0.1', $1)).close()" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "images: nothing answers on 127.0.0.1:$1" >&2
    exit 1
}

build() {
    local flavour=$1 tag=$2 started
    started=$(date +%s)
    DOCKER_BUILDKIT=1 "$DOCKER" build --network=host --progress=plain \
        --secret "id=pip-cert,src=$(ca_bundle)" \
        --build-arg "PYTHON_IMAGE=$BASE_TAG" --label "$SOURCE_LABEL" \
        "${LOCAL_PACKAGES[@]}" \
        -f "images/Dockerfile.$flavour" -t "$tag" . >"$LOGS/$flavour.log" 2>&1 \
        || { tail -n 30 "$LOGS/$flavour.log" >&2; echo "images: $flavour failed; log: $LOGS/$flavour.log" >&2; exit 1; }
    local size
    size=$("$DOCKER" image inspect --format '{{.Size}}' "$tag")
    echo "$tag: built in $(($(date +%s) - started)) s, $((size / 1000000)) MB"
}

images/engine.sh >&2
started=$(date +%s)
make_base
echo "base $BASE_TAG ready in $(($(date +%s) - started)) s" >&2

LOGS=$(mktemp -d /tmp/gr2-images.XXXXXX)
check_port_free "$PACKAGES_PORT"
LOCAL_PACKAGES=()
{
    read -r server
    while read -r setting; do
        [ -z "${setting#*=}" ] || LOCAL_PACKAGES+=(--build-arg "$setting")
    done
} < <(serve_local_packages "$LOGS/packages" "$PACKAGES_PORT")
trap 'kill "$server"' EXIT
wait_for_port "$PACKAGES_PORT"
[ $# -gt 0 ] || set -- cpu serve
for flavour in "$@"; do
    case $flavour in
        cpu) build cpu "$CPU_TAG" ;;
        serve) build serve "$SERVE_TAG" ;;
        *) echo "images: no image $flavour here (cpu, serve)" >&2; exit 2 ;;
    esac
done
# Each build of a changed checkout leaves the previous image untagged (its pip layer alone is about 2 GB):
# remove those, and only those (untagged and carrying this project's source label), so that repeated builds
# do not fill the disk.
"$DOCKER" image prune --force --filter "label=${SOURCE_LABEL%%=*}" >&2
