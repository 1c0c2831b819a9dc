#!/usr/bin/env bash
# Builds one upstream component from the Go module proxy into the per-user cache.
# Usage: build-component.sh <component>    (prints the directory holding its binaries)
# A component is built once per version; a finished build leaves a `.complete` marker,
# so an interrupted build is redone rather than trusted.
set -euo pipefail

component="${1:?usage: build-component.sh <component>}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache="${AFTERLIFE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/afterlife}"

die() { echo "build-component: $*" >&2; exit 1; }
command -v go >/dev/null 2>&1 || die "Go is not installed or not on PATH (need Go >= 1.25 to build $component; install it from https://go.dev/dl or your distribution)"

case "$component" in
  kubernetes) version="$KUBERNETES_VERSION" binaries="kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy" ;;
  etcd) version="$ETCD_VERSION" binaries="etcd etcdctl" ;;
  kwok) version="$KWOK_VERSION" binaries="kwok" ;;
  keda) version="$KEDA_VERSION" binaries="operator adapter" ;;
  helm) version="$HELM_VERSION" binaries="helm" ;;
  registry) version="$REGISTRY_VERSION" binaries="registry" ;;
  oras) version="$ORAS_VERSION" binaries="oras" ;;
  knative) version="$KNATIVE_SERVING_VERSION" binaries="controller autoscaler autoscaler-hpa webhook queue" ;;
  knative-eventing) version="$KNATIVE_EVENTING_VERSION" binaries="controller webhook channel_controller channel_dispatcher mtchannel_broker ingress filter" ;;
  coredns) version="$COREDNS_VERSION" binaries="coredns" ;;
  knative-config) version="$KNATIVE_SERVING_VERSION" binaries="" ;;
  knative-networking) version="$KNATIVE_SERVING_VERSION" binaries="" ;;
  containerd) version="$CONTAINERD_VERSION" binaries="containerd ctr containerd-shim-runc-v2" ;;
  runc) version="$RUNC_VERSION" binaries="runc" ;;
  cni) version="$CNI_PLUGINS_VERSION" binaries="bridge host-local loopback" ;;
  *) die "unknown component '$component' (known: kubernetes etcd kwok keda helm registry oras knative knative-eventing coredns knative-config knative-networking containerd runc cni)" ;;
esac

# AFTERLIFE_BUILD_VERSION builds another version of this one component (upgrades, tests).
version="${AFTERLIFE_BUILD_VERSION:-$version}"
out="$cache/bin/$component-$version"
# One build per component at a time across every process on the machine (tests, CI, CLI);
# a second caller waits and then finds the finished build.
mkdir -p "$cache/locks"
exec 9>"$cache/locks/$component.lock"
flock 9
complete() {
  [[ -f "$out/.complete" ]] || return 1
  local b
  for b in $binaries; do [[ -x "$out/$b" ]] || return 1; done
}
if complete; then echo "$out"; exit 0; fi
rm -rf "$out"; mkdir -p "$out"
work="$(mktemp -d "${TMPDIR:-/tmp}/afterlife-build-$component.XXXXXX")"
trap 'rm -rf "$work"' EXIT
log="$cache/logs/build-$component-$version.log"
mkdir -p "$(dirname "$log")"
: >"$log"

export CGO_ENABLED=0 GOFLAGS="-trimpath" GOTOOLCHAIN=local
ldflags_strip="-s -w"
started=$SECONDS
echo "build-component: building $component $version (log: $log)" >&2

run() { "$@" >>"$log" 2>&1 || { tail -n 30 "$log" >&2; die "building $component $version failed: '$*' (full log: $log)"; }; }

case "$component" in
  kubernetes)
    # k8s.io/kubernetes replaces its staging modules with ./staging paths that a module
    # download does not carry, so a wrapper module pins each to its published v0.x twin.
    run go mod download -json "k8s.io/kubernetes@$version"
    gomod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$version.mod"
    minor="${version#v1.}"; minor="${minor%%.*}"
    staging_version="v0.${version#v1.}"
    {
      echo "module afterlife.local/kubernetes-build"
      echo "go 1.25.0"
      echo "require k8s.io/kubernetes $version"
      grep -E '^\s*k8s.io/[a-z0-9-]+ => ./staging/' "$gomod" | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
    } >"$work/go.mod"
    stamp="k8s.io/component-base/version"
    cstamp="k8s.io/client-go/pkg/version"
    flags="$ldflags_strip"
    for p in "$stamp" "$cstamp"; do
      flags+=" -X $p.gitVersion=$version -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z -X $p.gitCommit=0000000000000000000000000000000000000000"
    done
    (cd "$work" && run env GOFLAGS="-trimpath -mod=mod" go build -ldflags "$flags" -o "$out/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
      k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy)
    ;;
  etcd)
    (cd "$work" && run go mod init afterlife.local/etcd-build && run go get "go.etcd.io/etcd/server/v3@$version" "go.etcd.io/etcd/etcdctl/v3@$version" \
      && run go build -ldflags "$ldflags_strip" -o "$out/etcd" go.etcd.io/etcd/server/v3 \
      && run go build -ldflags "$ldflags_strip" -o "$out/etcdctl" go.etcd.io/etcd/etcdctl/v3)
    ;;
  kwok)
    run env GOBIN="$out" go install -ldflags "$ldflags_strip -X sigs.k8s.io/kwok/pkg/consts.Version=$version" "sigs.k8s.io/kwok/cmd/kwok@$version"
    # The node and pod lifecycle Stages ship in the module, not in the binary.
    moddir="$(go env GOMODCACHE)/sigs.k8s.io/kwok@$version"
    mkdir -p "$out/stage"
    cp -r "$moddir/kustomize/stage/." "$out/stage/"
    chmod -R u+w "$out/stage"
    ;;
  keda)
    # KEDA's go.mod has replace directives, so `go install pkg@version` refuses it;
    # build inside a writable copy of the downloaded module instead.
    run go mod download -json "github.com/kedacore/keda/v2@$version"
    src="$(go env GOMODCACHE)/github.com/kedacore/keda/v2@$version"
    cp -r "$src/." "$work/keda"; chmod -R u+w "$work/keda"
    (cd "$work/keda" && run go build -ldflags "$ldflags_strip -X github.com/kedacore/keda/v2/version.Version=${version#v}" -o "$out/" ./cmd/operator ./cmd/adapter)
    mkdir -p "$out/config"
    cp -r "$src/config/." "$out/config/"; chmod -R u+w "$out/config"
    ;;
  helm)
    run env GOBIN="$out" go install -ldflags "$ldflags_strip -X helm.sh/helm/v3/internal/version.version=$version" "helm.sh/helm/v3/cmd/helm@$version"
    ;;
  registry)
    run env GOBIN="$out" go install -ldflags "$ldflags_strip" "github.com/distribution/distribution/v3/cmd/registry@$version"
    ;;
  oras)
    run env GOBIN="$out" go install -ldflags "$ldflags_strip" "oras.land/oras/cmd/oras@$version"
    ;;
  knative-config)
    # Only the CRDs and ConfigMaps (config/), for clusters that do not run Knative's controllers.
    run go mod download -json "knative.dev/serving@$version"
    src="$(go env GOMODCACHE)/knative.dev/serving@$version"
    mkdir -p "$out/config"
    cp -r "$src/config/." "$out/config/"; chmod -R u+w "$out/config"
    ;;
  knative-networking)
    # Networking (ServerlessService, Ingress, Certificate, ...) and caching (Image) CRDs plus
    # config-network, at the versions serving's go.mod requires.
    run go mod download -json "knative.dev/serving@$version"
    gomod="$(go env GOMODCACHE)/cache/download/knative.dev/serving/@v/$version.mod"
    for dep in networking caching; do
      depver="$(awk -v m="knative.dev/$dep" '$1 == m {print $2; exit}' "$gomod")"
      [[ -n "$depver" ]] || die "knative.dev/serving@$version does not require knative.dev/$dep"
      run go mod download -json "knative.dev/$dep@$depver"
      mkdir -p "$out/$dep/config"
      cp -r "$(go env GOMODCACHE)/knative.dev/$dep@$depver/config/." "$out/$dep/config/"
      echo "$depver" >"$out/$dep/VERSION"
    done
    chmod -R u+w "$out"
    ;;
  knative)
    run go mod download -json "knative.dev/serving@$version"
    src="$(go env GOMODCACHE)/knative.dev/serving@$version"
    cp -r "$src/." "$work/serving"; chmod -R u+w "$work/serving"
    (cd "$work/serving" && run go build -ldflags "$ldflags_strip" -o "$out/" ./cmd/controller ./cmd/autoscaler ./cmd/autoscaler-hpa ./cmd/webhook ./cmd/queue)
    mkdir -p "$out/config"
    cp -r "$src/config/." "$out/config/"; chmod -R u+w "$out/config"
    ;;
  knative-eventing)
    # The control plane (controller, webhook), the in-memory channel and the multi-tenant
    # channel-based broker: what a Broker + Trigger needs. Built like Serving, in a writable copy.
    run go mod download -json "knative.dev/eventing@$version"
    src="$(go env GOMODCACHE)/knative.dev/eventing@$version"
    cp -r "$src/." "$work/eventing"; chmod -R u+w "$work/eventing"
    (cd "$work/eventing" && run go build -ldflags "$ldflags_strip" -o "$out/" ./cmd/controller ./cmd/webhook \
      ./cmd/in_memory/channel_controller ./cmd/in_memory/channel_dispatcher ./cmd/mtchannel_broker ./cmd/broker/ingress ./cmd/broker/filter)
    mkdir -p "$out/config"
    cp -r "$src/config/." "$out/config/"; chmod -R u+w "$out/config"
    ;;
  coredns)
    # Cluster DNS (kube-dns Service) for pods: Eventing's data plane addresses *.svc.cluster.local.
    run go mod download -json "github.com/coredns/coredns@$version"
    src="$(go env GOMODCACHE)/github.com/coredns/coredns@$version"
    cp -r "$src/." "$work/coredns"; chmod -R u+w "$work/coredns"
    (cd "$work/coredns" && run go build -ldflags "$ldflags_strip -X github.com/coredns/coredns/coremain.GitCommit=afterlife" -o "$out/coredns" .)
    ;;
  containerd)
    # Static (no cgo), without btrfs; the runc shim comes from the same module and build.
    run go mod download -json "github.com/containerd/containerd/v2@$version"
    src="$(go env GOMODCACHE)/github.com/containerd/containerd/v2@$version"
    cp -r "$src/." "$work/containerd"; chmod -R u+w "$work/containerd"
    pkg="github.com/containerd/containerd/v2"
    (cd "$work/containerd" && run go build -tags "no_btrfs urfave_cli_no_docs" \
      -ldflags "$ldflags_strip -X $pkg/version.Version=$version -X $pkg/version.Revision=afterlife" \
      -o "$out/" ./cmd/containerd ./cmd/ctr ./cmd/containerd-shim-runc-v2)
    ;;
  runc)
    # runc needs cgo and libseccomp (Debian's libseccomp-dev; scripts/host-deps.sh installs it).
    [[ -f /usr/include/seccomp.h ]] || die "runc needs libseccomp headers: run 'bash $here/host-deps.sh' (installs Debian's libseccomp-dev) first"
    run go mod download -json "github.com/opencontainers/runc@$version"
    src="$(go env GOMODCACHE)/github.com/opencontainers/runc@$version"
    cp -r "$src/." "$work/runc"; chmod -R u+w "$work/runc"
    (cd "$work/runc" && run env CGO_ENABLED=1 go build -tags seccomp -ldflags "$ldflags_strip -X main.version=${version#v} -X main.gitCommit=afterlife" -o "$out/runc" .)
    ;;
  cni)
    run go mod download -json "github.com/containernetworking/plugins@$version"
    src="$(go env GOMODCACHE)/github.com/containernetworking/plugins@$version"
    cp -r "$src/." "$work/cni"; chmod -R u+w "$work/cni"
    (cd "$work/cni" && run go build -ldflags "$ldflags_strip" -o "$out/" ./plugins/main/bridge ./plugins/ipam/host-local ./plugins/main/loopback)
    ;;
esac

echo "$version" >"$out/.complete"
complete || die "$component $version built but some of its binaries ($binaries) are missing from $out"
echo "build-component: built $component $version in $((SECONDS - started))s" >&2
echo "$out"
