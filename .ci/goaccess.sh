#!/usr/bin/env bash
# Installs GoAccess (Debian package goaccess), which the end-to-end test of the W3C access
# log runs to parse what certfront writes. Works on a fresh Debian machine as root with no
# TTY; running it again is a no-op.
set -euo pipefail

# shellcheck source=.ci/lib.sh
. "$(dirname "$0")/lib.sh"
need_package goaccess goaccess
goaccess --version | head -n 1
