#!/usr/bin/env bash
# Validates the Helm chart without a cluster: renders charts/stratum with
# Helm's own Go SDK (the PyPI package helm-python-sdk, which bundles it) for
# the default values and the values files beside the chart, lints it, and
# validates every manifest and CRD against the Kubernetes OpenAPI schemas
# (kubernetes-validate). Everything is installed into a fresh virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(mktemp -d)/venv"
trap 'rm -rf "$(dirname "$venv")"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 PyYAML==6.0.2
"$venv/bin/python" scripts/check_chart.py
