#!/usr/bin/env bash
# The report test screenshots the demo's HTML report in Debian's headless Chromium.
# Installs it once when missing (as root, from Debian's packages); otherwise says why not.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then exit 0; fi
if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: installing Debian's chromium for the report screenshot test" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "ensure-chromium: no chromium and cannot install it (need root + apt-get); the report screenshot test will be skipped" >&2
fi
