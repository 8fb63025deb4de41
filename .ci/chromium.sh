#!/usr/bin/env bash
# Installs headless Chromium (Debian package chromium), which the end-to-end test of the
# admin inventory page loads the page in. Works on a fresh Debian machine as root with no
# TTY; running it again is a no-op.
set -euo pipefail

# shellcheck source=.ci/lib.sh
. "$(dirname "$0")/lib.sh"
need_package chromium chromium
chromium --version | head -n 1
