#!/usr/bin/env bash
# Installs pebble (Let's Encrypt's RFC 8555 test server, Debian package "pebble", which
# also ships pebble-challtestsrv, the tests' DNS) when it is missing, so the ACME
# end-to-end tests run on a fresh Debian machine as root with no TTY. Running it again is
# a no-op. Exits non-zero when pebble cannot be had: the ACME tests then fail, not skip.
set -euo pipefail

# shellcheck source=.ci/lib.sh
. "$(dirname "$0")/lib.sh"
need_package pebble pebble pebble-challtestsrv
