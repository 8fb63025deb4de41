#!/usr/bin/env bash
# Validates deploy/kubernetes/*.yaml against the Kubernetes API schemas with the PyPI
# package kubernetes-validate, which ships the schemas (no cluster, no network at run
# time). Installs it into .ci/.venv when missing. Checked against 1.30 (the oldest
# version with the preStop sleep the Deployment uses) and the package's newest version.
# The Prometheus Operator kinds (PrometheusRule, ServiceMonitor) and the Kustomization
# have no schema there: tests/tests/deploy.rs checks those files structurally.
set -euo pipefail

cd "$(dirname "$0")/.."

validate=.ci/.venv/bin/kubernetes-validate
if [ ! -x "$validate" ]; then
    echo "kubernetes-validate not found: installing it from PyPI into .ci/.venv" >&2
    [ -x .ci/.venv/bin/pip ] || python3 -m venv .ci/.venv
    .ci/.venv/bin/pip install --quiet --disable-pip-version-check kubernetes-validate
fi

"$validate" --version
for version in 1.30.0 latest; do
    args=(--strict --quiet)
    [ "$version" = latest ] || args+=(-k "$version")
    # --no-warn hides only the "no schema" notes of the kinds above; errors are printed
    "$validate" "${args[@]}" --no-warn deploy/kubernetes/*.yaml
    echo "kubernetes-validate ($version): deploy/kubernetes clean"
done
