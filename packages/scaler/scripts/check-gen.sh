#!/usr/bin/env bash
# Fails when src/gen is not what scripts/generate.sh produces from proto/ right now.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
bash scripts/generate.sh "$tmp"
if ! diff -r "$tmp" src/gen; then
  echo "src/gen is stale: run 'pnpm run generate' in packages/scaler and commit the result" >&2
  exit 1
fi
echo "src/gen is up to date"
