#!/usr/bin/env bash
# Builds the agent ramdisk: ironflow-agent.vmlinuz + ironflow-agent.initramfs
# (api/pxe.ts AGENT_BOOT_FILES) into OUTDIR, from Debian's kernel package,
# busybox-static and agent/. Idempotent: the kernel package is downloaded once
# per version into ~/.cache/ironflow/agent/<version>/ and reused by every
# clone; the outputs are replaced atomically only when their content changed.
#
#   agent/build-initramfs.sh OUTDIR [KERNEL_VERSION]     e.g. 6.1.0-56-amd64
#
# The initramfs holds: /init (below), busybox and its applet links, the
# virtio modules (insmod'ed in the order measured on this project's machines: Debian ships them
# as modules without a usable modules.dep), a udhcpc script, and the agent.
set -euo pipefail

OUT=${1:?usage: $0 OUTDIR [KERNEL_VERSION]}
HERE=$(cd "$(dirname "$0")" && pwd)
say() { printf 'build-initramfs: %s\n' "$*"; }

KVER=${2:-${IRONFLOW_AGENT_KERNEL:-}}
if [ -z "$KVER" ]; then
  # The version Debian's linux-image-amd64 metapackage points at right now.
  KVER=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: linux-image-\([0-9].*-amd64\)$/\1/p' | head -n 1)
  [ -n "$KVER" ] || { echo "build-initramfs: cannot tell the kernel version from 'apt-cache depends linux-image-amd64'; run apt-get update or pass KERNEL_VERSION" >&2; exit 1; }
fi
BUSYBOX=$(command -v busybox) || { echo "build-initramfs: busybox not found: apt-get install busybox-static" >&2; exit 1; }
! command -v file >/dev/null || file -L "$BUSYBOX" | grep -q 'statically linked' || { echo "build-initramfs: $BUSYBOX is not static: apt-get install busybox-static" >&2; exit 1; }

MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net virtio_blk"
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/ironflow/agent/$KVER

# 1. Kernel package, once per version.
if [ -f "$CACHE/.complete" ]; then
  say "kernel $KVER: cached in $CACHE"
else
  say "kernel $KVER: downloading linux-image-$KVER (apt-get download)"
  rm -rf "$CACHE"; mkdir -p "$CACHE/deb"
  # As root, apt drops to _apt, which cannot write into $HOME: stay root for this one download.
  (cd "$CACHE/deb" && apt-get download -o APT::Sandbox::User=root "linux-image-$KVER")
  say "kernel $KVER: unpacking (dpkg -x)"
  dpkg -x "$CACHE"/deb/*.deb "$CACHE/root"
  rm -rf "$CACHE/deb"
  # Keep the kernel and the virtio/failover modules only: 400 MB -> ~10 MB.
  find "$CACHE/root/lib/modules" -name '*.ko*' ! -name 'virtio*' ! -name '*failover*' -delete
  rm -rf "$CACHE/root/usr"
  touch "$CACHE/.complete"
fi
VMLINUZ="$CACHE/root/boot/vmlinuz-$KVER"
[ -f "$VMLINUZ" ] || { echo "build-initramfs: $VMLINUZ missing; delete $CACHE and run again" >&2; exit 1; }

# 2. Staging tree.
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,etc,lib/modules,agent/lib,root}
cp "$BUSYBOX" "$STAGE/bin/busybox"
for applet in $("$BUSYBOX" --list-full); do
  [ "$applet" = bin/busybox ] || ln -sf /bin/busybox "$STAGE/$applet"
done
ln -sf /bin/busybox "$STAGE/bin/sh"

say "modules: $MODULES"
for m in $MODULES; do
  f=$(find "$CACHE/root/lib/modules/$KVER/kernel" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" | head -n 1)
  [ -n "$f" ] || { echo "build-initramfs: module $m not in linux-image-$KVER (is it built in? then drop it from MODULES)" >&2; exit 1; }
  case "$f" in
    *.xz) xz -dc "$f" >"$STAGE/lib/modules/$m.ko" ;;
    *.zst) zstd -qdc "$f" >"$STAGE/lib/modules/$m.ko" ;;
    *) cp "$f" "$STAGE/lib/modules/$m.ko" ;;
  esac
done

cp "$HERE/ironflow-agent.sh" "$STAGE/agent/"
cp "$HERE"/lib/*.sh "$STAGE/agent/lib/"

cat >"$STAGE/etc/udhcpc.script" <<'SCRIPT'
#!/bin/sh
# udhcpc calls this with $1 = deconfig|bound|renew and the lease in env vars.
case "$1" in
  deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip -4 addr add "$ip/${mask:-24}" dev "$interface"
    for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
    : >/etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done ;;
esac
SCRIPT

cat >"$STAGE/init" <<SCRIPT
#!/bin/sh
# Ironflow agent ramdisk init: mount the kernel filesystems, load the virtio
# drivers (order matters: each needs the ones before it), get an address by
# DHCP on the first NIC that answers, run the agent. The agent powers off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
echo "ironflow-agent init: loading drivers"
for m in $MODULES; do insmod /lib/modules/\$m.ko 2>/dev/null || echo "init: insmod \$m failed (built in?)"; done
ip link set lo up
# NICs appear asynchronously after virtio_net loads: wait up to 10 s.
i=0
while [ \$i -lt 20 ] && [ -z "\$(ls /sys/class/net | grep -v '^lo\$')" ]; do sleep 0.5; i=\$((i + 1)); done
up=""
for n in \$(ls /sys/class/net | grep -v '^lo\$'); do
  ip link set "\$n" up
  if udhcpc -i "\$n" -n -q -t 5 -T 2 -s /etc/udhcpc.script; then up=\$n; break; fi
done
[ -n "\$up" ] || echo "init: no NIC got a DHCP lease; the agent will retry its lookup"
/bin/sh /agent/ironflow-agent.sh
rc=\$?
echo "ironflow-agent exited with \$rc"
# ironflow.debug on the cmdline keeps a shell on the console for a human.
if grep -q ironflow.debug /proc/cmdline; then exec /bin/sh; fi
sleep 5
poweroff -f
SCRIPT
chmod 0755 "$STAGE/init" "$STAGE/etc/udhcpc.script" "$STAGE/agent/ironflow-agent.sh"

# 3. Archive: sorted, fixed mtimes and owner, so the same inputs give the same bytes.
mkdir -p "$OUT"
find "$STAGE" -exec touch -h -d @0 {} +
(cd "$STAGE" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet | gzip -9 -n) >"$OUT/.ironflow-agent.initramfs.new"
install_if_changed() {
  if [ -f "$2" ] && cmp -s "$1" "$2"; then rm -f "$1"; say "$2 unchanged"; else mv -f "$1" "$2"; say "wrote $2 ($(stat -c %s "$2") bytes)"; fi
}
install_if_changed "$OUT/.ironflow-agent.initramfs.new" "$OUT/ironflow-agent.initramfs"
cp "$VMLINUZ" "$OUT/.ironflow-agent.vmlinuz.new"
install_if_changed "$OUT/.ironflow-agent.vmlinuz.new" "$OUT/ironflow-agent.vmlinuz"
