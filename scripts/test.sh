#!/usr/bin/env bash
# Install every distribution of this repository with the test tools, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
# Real components for the tests that need them (Debian's packages, on a fresh machine as root):
# redis-server (shared state across gateways), chromium (the status page in a real browser) and
# postgresql (usage records and client keys in PostgreSQL; the tests start a private cluster).
# Without them those tests skip and say how to enable them.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; } \
    || echo "could not install ${missing[*]}: the tests that need them will skip" >&2
fi
python -m pip install --disable-pip-version-check -q -r requirements-dev.txt
python -m pytest "$@"
