/**
 * One lab machine as a real QEMU virtual machine (a recipe measured on 2 cores): TCG (KVM
 * is unusable here), 512 MB, a raw disk and a virtio-net NIC whose option
 * ROM is iPXE (Debian ipxe-qemu), both with a `bootindex` and
 * `-boot strict=on`, so the boot device is exactly what the BMC last set.
 *
 * The VM starts powered off (`-S`: created, not running) and is driven only
 * through QMP: the BMC (bmc.ts) has its own monitor socket, the lab another,
 * since a QMP socket serves one client at a time. `-no-shutdown` keeps QEMU
 * alive when the guest powers off (status `shutdown`), so the BMC can power
 * it on again with `system_reset` + `cont`; no `-no-reboot` (a BMC-managed VM must come back on a reset).
 * The serial console goes to a file, for post-mortems.
 */
import { existsSync, mkdirSync, openSync, closeSync, ftruncateSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { normalizeMac } from '../../api/pxe';
import { startLabChild, type LabChild } from '../bmc/child';
import type { LabNetwork } from './network';
import { qmp } from './qmp';

/** Device ids under /machine/peripheral/, which the BMC's boot-device code addresses. */
export const VM_DEVICES = { disk: 'disk0', nic: 'nic0' } as const;

export interface StartVmOptions {
  name: string;
  /** Disk image, sockets, console log go here. */
  workDir: string;
  network: LabNetwork;
  tap: string;
  mac: string;
  diskMiB?: number;
  /** Serial number of the virtio disk (what inspection reports). */
  diskSerial?: string;
  memoryMiB?: number;
  qemu?: string;
}

export interface LabVm {
  name: string;
  mac: string;
  diskBytes: number;
  diskSerial: string;
  /** The BMC's monitor (bmc.ts). */
  bmcQmpSocket: string;
  /** The lab's own monitor (status, RSS checks). */
  qmpSocket: string;
  consoleLog: string;
  pid: number;
  /** QEMU's run state: prelaunch (never started), running, paused, shutdown... */
  status(): Promise<string>;
  /** Resident memory of the QEMU process, in MiB. */
  rssMiB(): number;
  stop(): Promise<void>;
}

export async function startVm(o: StartVmOptions): Promise<LabVm> {
  mkdirSync(o.workDir, { recursive: true });
  const mac = normalizeMac(o.mac);
  const diskBytes = (o.diskMiB ?? 64) * 1024 * 1024;
  const diskSerial = o.diskSerial ?? `IFQ-${o.name}`.slice(0, 20);
  const disk = join(o.workDir, 'disk.raw');
  // Sparse raw file: costs no space until written, and the agent sees exactly diskBytes.
  const fd = openSync(disk, 'w');
  ftruncateSync(fd, diskBytes);
  closeSync(fd);
  const bmcQmpSocket = join(o.workDir, 'qmp-bmc.sock');
  const qmpSocket = join(o.workDir, 'qmp-lab.sock');
  const consoleLog = join(o.workDir, 'console.log');
  if (/[,\s]/.test(o.workDir)) throw new Error(`VM work dir ${o.workDir} must not contain commas or spaces (QEMU option syntax)`);
  const [cmd, args] = o.network.exec(o.qemu ?? 'qemu-system-x86_64', [
    '-name', o.name,
    '-accel', 'tcg',
    '-machine', 'pc',
    '-m', String(o.memoryMiB ?? 512),
    '-nodefaults', '-display', 'none', '-vga', 'none',
    '-S', '-no-shutdown',
    '-boot', 'strict=on',
    '-drive', `file=${disk},if=none,id=drv0,format=raw`,
    '-device', `virtio-blk-pci,drive=drv0,id=${VM_DEVICES.disk},serial=${diskSerial},bootindex=1`,
    '-netdev', `tap,id=net0,ifname=${o.tap},script=no,downscript=no`,
    // QEMU loads efi-virtio.rom (iPXE, from ipxe-qemu) as this NIC's option ROM.
    '-device', `virtio-net-pci,netdev=net0,id=${VM_DEVICES.nic},mac=${mac},bootindex=2`,
    '-serial', `file:${consoleLog}`,
    '-qmp', `unix:${bmcQmpSocket},server=on,wait=off`,
    '-qmp', `unix:${qmpSocket},server=on,wait=off`,
  ]);
  const child: LabChild = await startLabChild({
    command: cmd,
    args,
    logFile: join(o.workDir, 'qemu.log'),
    ready: async () => existsSync(qmpSocket) && (await qmp(qmpSocket, [{ execute: 'query-status' }], 1_000).then(() => true, () => false)),
    readyTimeoutMs: 15_000,
  });
  return {
    name: o.name,
    mac,
    diskBytes,
    diskSerial,
    bmcQmpSocket,
    qmpSocket,
    consoleLog,
    // `ip netns exec` execs QEMU in place: the child's pid is QEMU's.
    pid: child.pid,
    async status() {
      const [r] = await qmp(qmpSocket, [{ execute: 'query-status' }]);
      return (r as { status: string }).status;
    },
    rssMiB() {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      return m ? Number(m[1]) / 1024 : NaN;
    },
    stop: child.stop,
  };
}
