#!/usr/bin/env bash
# Installs the Debian packages a real local node needs and the machine may lack:
# iptables (CNI bridge masquerade/port rules, kube-proxy), nftables (teardown removes the tables
# kube-proxy created) and libseccomp-dev (building runc with seccomp).
# Idempotent; does nothing when everything is present. Needs root (apt-get).
set -euo pipefail
need=()
command -v iptables >/dev/null 2>&1 || need+=(iptables)
command -v nft >/dev/null 2>&1 || need+=(nftables)
[[ -f /usr/include/seccomp.h ]] || need+=(libseccomp-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
((${#need[@]} == 0)) && exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "host-deps: missing Debian packages ${need[*]}; install them as root: apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "host-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
