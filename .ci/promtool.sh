#!/usr/bin/env bash
# Checks and unit-tests the shipped Prometheus alert rules with promtool.
# Installs promtool (Debian package "prometheus") when it is missing, so it
# works on a fresh Debian machine as root with no TTY; running it again is a
# no-op apart from the checks. Exits non-zero when anything fails.
set -euo pipefail

cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
    echo "promtool not found: installing Debian package prometheus" >&2
    if [ "$(id -u)" -eq 0 ]; then
        as_root() { "$@"; }
    elif command -v sudo >/dev/null 2>&1; then
        as_root() { sudo -n "$@"; }
    else
        echo "error: promtool is missing and installing it needs root" >&2
        exit 1
    fi
    as_root apt-get update -qq
    # The package's postinst tries to start the server; without systemd that
    # is refused and harmless. Only promtool is used here.
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    command -v promtool >/dev/null 2>&1 || {
        echo "error: prometheus installed but promtool is not on PATH" >&2
        exit 1
    }
fi

promtool --version | head -n 1
promtool check rules config/prometheus/alerts.yml
promtool test rules config/prometheus/alerts.test.yml
