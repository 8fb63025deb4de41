#!/usr/bin/env bash
# Installs pebble (Let's Encrypt's RFC 8555 test server, Debian package "pebble", which
# also ships pebble-challtestsrv, the tests' DNS) when it is missing, so the ACME
# end-to-end tests run on a fresh Debian machine as root with no TTY. Running it again is
# a no-op. Exits non-zero when pebble cannot be had: the ACME tests then fail, not skip.
set -euo pipefail

if command -v pebble >/dev/null 2>&1 && command -v pebble-challtestsrv >/dev/null 2>&1; then
    exit 0
fi
echo "pebble not found: installing Debian package pebble" >&2
if [ "$(id -u)" -eq 0 ]; then
    as_root() { "$@"; }
elif command -v sudo >/dev/null 2>&1; then
    as_root() { sudo -n "$@"; }
else
    echo "error: pebble is missing and installing it needs root" >&2
    exit 1
fi
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends pebble >/dev/null
for tool in pebble pebble-challtestsrv; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "error: package pebble installed but $tool is not on PATH" >&2
        exit 1
    }
done
