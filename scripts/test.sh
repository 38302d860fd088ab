#!/usr/bin/env bash
# Install every distribution of this repository with the test tools, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --disable-pip-version-check -q -r requirements-dev.txt
python -m pytest "$@"
