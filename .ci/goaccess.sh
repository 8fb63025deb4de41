#!/usr/bin/env bash
# Installs GoAccess (Debian package goaccess), which the end-to-end test of the W3C access
# log runs to parse what certfront writes. Works on a fresh Debian machine as root with no
# TTY; running it again is a no-op.
set -euo pipefail

if ! command -v goaccess >/dev/null 2>&1; then
    echo "goaccess not found: installing Debian package goaccess" >&2
    if [ "$(id -u)" -eq 0 ]; then
        as_root() { "$@"; }
    elif command -v sudo >/dev/null 2>&1; then
        as_root() { sudo -n "$@"; }
    else
        echo "error: goaccess is missing and installing it needs root" >&2
        exit 1
    fi
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends goaccess >/dev/null
fi
goaccess --version | head -n 1
