/**
 * A simulated server's view of itself: the /proc, /sys and /dev files the
 * ramdisk agent reads, synthesized from a LabServer (api/lab.ts), so the real
 * agent script runs against it unchanged (SYSROOT=<dir>). Disks are sparse
 * image files of the disk's size at dev/<name>: a disk written by a simulated
 * server is a real file whose content a test checks.
 *
 * Disk faults: the image file is replaced by a symlink to /dev/full, which
 * reads as zeros and fails every write with ENOSPC, a real kernel I/O error
 * that the agent's dd sees and reports (failedDisk).
 *   disk-fail-write  every disk refuses writes (so any deploy fails, whichever
 *                    disk the hints pick);
 *   disk-fail-erase  the first disk refuses writes (the erase report shows it
 *                    failed beside disks that were erased).
 * sysfs still shows the faulty disk's size and serial, as on a real server
 * whose disk enumerates fine and fails on write.
 */
import { lstat, mkdir, open, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AGENT_CMDLINE } from '../../api/pxe';
import type { LabServer } from '../../api/lab';

export interface SysrootOptions {
  /** Directory to create (removed first if present). */
  dir: string;
  /** Base URL of the agent API, written to proc/cmdline as ironflow.api. */
  apiUrl: string;
  bootId: string;
  /** Keep existing disk images (a reboot keeps what was written). */
  keepDisks?: boolean;
  /**
   * The kernel command line as the boot script gave it, written to
   * proc/cmdline unchanged (whatever the plane puts there, e.g. the agent's
   * token, reaches the agent). Without it: console, api and boot id only.
   */
  cmdline?: string;
}

export interface Sysroot {
  dir: string;
  /** Absolute path of each disk's image file, by disk name. */
  diskPaths: Record<string, string>;
  /** Disks that fail writes (a symlink to /dev/full), by name. */
  failingDisks: string[];
}

const GiB = 1024 ** 3;

/** Disk size in bytes: whole 512-byte sectors (sizeGiB may be fractional, e.g. 0.0625 = 64 MiB). */
export const labDiskBytes = (sizeGiB: number) => Math.floor((sizeGiB * GiB) / 512) * 512;

function failingDisks(server: LabServer): string[] {
  const faults = new Set((server.faults ?? []).map((f) => f.fault));
  if (faults.has('disk-fail-write')) return server.disks.map((d) => d.name);
  if (faults.has('disk-fail-erase') && server.disks[0]) return [server.disks[0].name];
  return [];
}

async function put(path: string, content: string): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, content);
}

export async function createSysroot(server: LabServer, opts: SysrootOptions): Promise<Sysroot> {
  const { dir } = opts;
  if (!opts.keepDisks) await rm(dir, { recursive: true, force: true });
  for (const sub of ['proc', 'sys/block', 'sys/class/net', 'sys/class/dmi/id']) await rm(join(dir, sub), { recursive: true, force: true });
  await mkdir(join(dir, 'dev'), { recursive: true });
  await mkdir(join(dir, 'tmp'), { recursive: true });

  const cpu = (i: number) =>
    `processor\t: ${i}\nvendor_id\t: GenuineIntel\nmodel name\t: Ironflow Lab vCPU @ 2.40GHz\ncpu MHz\t\t: 2400.000\ncpu cores\t: ${server.cpus}\n\n`;
  await put(join(dir, 'proc/cpuinfo'), Array.from({ length: server.cpus }, (_, i) => cpu(i)).join(''));
  // MemAvailable etc. only for realism; the agent reads MemTotal.
  const kib = server.memoryMiB * 1024;
  await put(join(dir, 'proc/meminfo'), `MemTotal:       ${kib} kB\nMemFree:        ${kib} kB\nMemAvailable:   ${kib} kB\n`);
  await put(join(dir, 'proc/cmdline'), `${opts.cmdline ?? `console=ttyS0 ${AGENT_CMDLINE.api}=${opts.apiUrl} ${AGENT_CMDLINE.bootId}=${opts.bootId}`}\n`);
  await put(join(dir, 'sys/class/dmi/id/sys_vendor'), `${server.vendor}\n`);
  await put(join(dir, 'sys/class/dmi/id/product_name'), `${server.model}\n`);
  await put(join(dir, 'sys/class/dmi/id/product_serial'), `LAB-${server.name}\n`);

  const failing = failingDisks(server);
  const diskPaths: Record<string, string> = {};
  for (const d of server.disks) {
    const bytes = labDiskBytes(d.sizeGiB);
    const sys = join(dir, 'sys/block', d.name);
    await put(join(sys, 'size'), `${bytes / 512}\n`);
    await put(join(sys, 'queue/rotational'), d.rotational ? '1\n' : '0\n');
    // virtio-blk exposes its serial at /sys/block/vdX/serial; SCSI/SATA at device/serial.
    await put(join(sys, 'serial'), `${d.serialNumber}\n`);
    await put(join(sys, 'device/model'), `${d.model ?? 'QEMU HARDDISK'}   \n`);
    await put(join(sys, 'device/vendor'), 'QEMU    \n');
    const path = join(dir, 'dev', d.name);
    diskPaths[d.name] = path;
    if (failing.includes(d.name)) {
      await rm(path, { force: true });
      await symlink('/dev/full', path);
    } else {
      if (!opts.keepDisks || (await lstat(path).catch(() => undefined))?.isSymbolicLink()) await rm(path, { force: true });
      // Sparse: a 64 GiB lab disk costs nothing until written. 'a' keeps content.
      const fh = await open(path, 'a');
      await fh.truncate(bytes);
      await fh.close();
    }
  }
  for (const n of server.nics) await put(join(dir, 'sys/class/net', n.name, 'address'), `${n.mac.toLowerCase()}\n`);
  return { dir, diskPaths, failingDisks: failing };
}
