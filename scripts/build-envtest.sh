#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kubectl and etcd from the
# published Go modules pinned in scripts/envtest and scripts/etcd, once per
# version, into a cache OUTSIDE the clone (~/.cache/ironflow by default) so
# every clone and CI run reuses them.
# A cold build takes ~10 minutes on 2 cores (kube-controller-manager ~20 more
# on a busy machine, sharing the kube-apiserver build cache); a warm run
# returns at once. Go runs at low priority: the machine stays usable meanwhile.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
cache=${IRONFLOW_CACHE:-$HOME/.cache/ironflow}
out="$cache/envtest/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
mkdir -p "$out"
# Two clones setting up at once must not both build into the same folder.
exec 9>"$out/.lock"
flock 9
export GOFLAGS=-mod=mod

build() { # name, module dir, package, extra args...
  local name=$1 dir=$2 pkg=$3; shift 3
  if [ -x "$out/$name" ]; then echo "envtest: $name cached at $out/$name"; return; fi
  echo "envtest: building $name from $pkg (several minutes when cold)..."
  local t0=$SECONDS
  (cd "$dir" && nice -n 10 go build -trimpath -o "$out/$name.tmp" "$@" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
  echo "envtest: $name built in $((SECONDS - t0)) s"
}

# Without these kubectl and the server report v0.0.0-master.
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
build kube-apiserver "$here/envtest" k8s.io/kubernetes/cmd/kube-apiserver -ldflags "$ldflags"
build kube-controller-manager "$here/envtest" k8s.io/kubernetes/cmd/kube-controller-manager -ldflags "$ldflags"
build kubectl "$here/envtest" k8s.io/kubernetes/cmd/kubectl -ldflags "$ldflags"
build etcd "$here/etcd" . -ldflags "-s -w"
echo "$out"
