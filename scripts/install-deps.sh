#!/bin/sh
# Installs the Debian packages masterd and libzserver build and test with.
# Called by `make` when a header is missing; safe to run again (apt is idempotent).
set -eu
PKGS="libev-dev libinih-dev check pkg-config"
[ "$#" -gt 0 ] && PKGS="$PKGS $*"
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: apt-get not found; install by hand: $PKGS" >&2
    exit 1
fi
SUDO=
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "install-deps: not root and no sudo; install by hand: $PKGS" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null || $SUDO apt-get update
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
echo "install-deps: installed $PKGS"
