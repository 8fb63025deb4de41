#!/usr/bin/env bash
# Installs headless Chromium (Debian package chromium), which the end-to-end test of the
# admin inventory page loads the page in. Works on a fresh Debian machine as root with no
# TTY; running it again is a no-op.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
    echo "chromium not found: installing Debian package chromium" >&2
    if [ "$(id -u)" -eq 0 ]; then
        as_root() { "$@"; }
    elif command -v sudo >/dev/null 2>&1; then
        as_root() { sudo -n "$@"; }
    else
        echo "error: chromium is missing and installing it needs root" >&2
        exit 1
    fi
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
chromium --version | head -n 1
