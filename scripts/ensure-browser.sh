#!/usr/bin/env bash
# Install Debian's Chromium for the Playwright browser tests if it is missing. Playwright's own
# browser download cannot work here (no network beyond the package registries), so the tests
# launch /usr/bin/chromium.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-browser: /usr/bin/chromium is missing; install Debian's chromium package" >&2
  exit 1
fi
echo "ensure-browser: installing chromium"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
