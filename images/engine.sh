#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine, starting one when it can; exit 1 with the reason when
# it cannot. As root, it installs Debian's docker.io when dockerd is missing and starts dockerd with no
# bridge and no NAT: every build and container of this project uses the host's network (--network=host).
#   images/engine.sh            # prints the engine's version, or why there is none
# DOCKER names the client (default: Debian's /usr/bin/docker, whose built-in BuildKit the image builds use).
set -euo pipefail

DOCKER=${DOCKER:-/usr/bin/docker}
LOG=${GR2_DOCKERD_LOG:-/var/log/gr2-dockerd.log}

engine_version() {
    "$DOCKER" version --format '{{.Server.Version}}' 2>/dev/null
}

fail() {
    echo "images/engine.sh: no Docker engine: $*" >&2
    exit 1
}

install_engine() {
    [ "$(id -u)" = 0 ] || fail "dockerd is not installed and installing it needs root"
    command -v apt-get >/dev/null || fail "dockerd is not installed and there is no apt-get to install it"
    echo "images/engine.sh: installing docker.io and debootstrap (Debian packages)" >&2
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io debootstrap >/dev/null
}

start_engine() {
    [ "$(id -u)" = 0 ] || fail "no engine answers on the socket and starting dockerd needs root"
    dockerd --bridge=none --iptables=false --ip-masq=false >>"$LOG" 2>&1 &
    for _ in $(seq 60); do
        engine_version >/dev/null && return 0
        kill -0 $! 2>/dev/null || fail "dockerd exited: $(tail -n 3 "$LOG")"
        sleep 0.5
    done
    fail "dockerd did not answer within 30 s: $(tail -n 3 "$LOG")"
}

if ! engine_version >/dev/null; then
    { [ -x "$DOCKER" ] && command -v dockerd >/dev/null; } || install_engine
    start_engine
fi
echo "Docker engine $(engine_version)"
