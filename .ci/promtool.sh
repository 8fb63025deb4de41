#!/usr/bin/env bash
# Checks and unit-tests the shipped Prometheus alert rules with promtool.
# Installs promtool (Debian package "prometheus") when it is missing, so it
# works on a fresh Debian machine as root with no TTY; running it again is a
# no-op apart from the checks. Exits non-zero when anything fails.
set -euo pipefail

cd "$(dirname "$0")/.."

# shellcheck source=.ci/lib.sh
. .ci/lib.sh
# The package's postinst tries to start the server; without systemd that is refused and
# harmless. Only promtool is used here.
need_package prometheus promtool

promtool --version | head -n 1
promtool check rules config/prometheus/alerts.yml
promtool test rules config/prometheus/alerts.test.yml
