#!/usr/bin/env bash
# Runs a command with Node 24 + pnpm on PATH and the workspace installed and built.
# Usage: with-toolchain.sh <command...>
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
# shellcheck source=toolchain.sh
source "$here/toolchain.sh"
# Debian packages real nodes need (iptables, libseccomp-dev for runc); a no-op once present.
bash "$here/host-deps.sh"
cd "$root"
# pnpm's store lives in the per-user cache so a fresh clone installs from it offline-fast.
export npm_config_store_dir="${npm_config_store_dir:-$AFTERLIFE_CACHE/pnpm-store}"
stamp="node_modules/.afterlife-install-stamp"
lock_sum="$({ cat pnpm-lock.yaml package.json; cat packages/*/package.json conformance/package.json 2>/dev/null || true; } | sha256sum | cut -c1-16)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$lock_sum" ]]; then
  pnpm install --frozen-lockfile --reporter=append-only
  echo "$lock_sum" >"$stamp"
fi
pnpm run --silent build
exec "$@"
