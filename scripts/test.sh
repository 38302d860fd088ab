#!/usr/bin/env bash
# Install every distribution of this repository with the test tools, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
# Real components for the tests that need them (Debian's packages, on a fresh machine as root);
# without them those tests skip and say how to enable them.
if ! command -v redis-server >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get install -y -q redis-server >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q redis-server >/dev/null 2>&1; } \
    || echo "could not install redis-server: the shared-state tests will skip" >&2
fi
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get install -y -q chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
    || echo "could not install chromium: the status page browser tests will skip" >&2
fi
python -m pip install --disable-pip-version-check -q -r requirements-dev.txt
python -m pytest "$@"
