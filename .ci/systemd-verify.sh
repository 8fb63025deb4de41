#!/usr/bin/env bash
# Checks deploy/systemd/certfront.service with `systemd-analyze verify` when systemd is
# installed (skipped, and said so, where it is not). The unit's ExecStart names the
# installed binary; verify needs an executable there, so a copy of the unit pointing at
# the freshly built binary is checked. Any message at all (an unknown key is only a
# warning to systemd) fails the check.
set -euo pipefail

cd "$(dirname "$0")/.."

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "systemd-analyze not installed: deploy/systemd/certfront.service not verified"
    exit 0
fi
cargo build --quiet -p certfront
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|/usr/local/bin/certfront|$PWD/target/debug/certfront|g" \
    deploy/systemd/certfront.service >"$tmp/certfront.service"
systemd-analyze --version | head -n 1
if ! out=$(systemd-analyze verify "$tmp/certfront.service" 2>&1) || [ -n "$out" ]; then
    echo "$out"
    echo "error: deploy/systemd/certfront.service does not verify" >&2
    exit 1
fi
echo "systemd-analyze verify: deploy/systemd/certfront.service clean"
