/**
 * What a simulated server's firmware and first-boot unit find on its disks
 * when it boots from disk: which disk holds a bootable lab image (the root
 * device) and the user data the agent wrote to that disk's last MiB
 * (agent/lib/deploy.sh: a 512-byte header `IRONFLOW-USERDATA 1 <len> <sha256>\n`,
 * zero padded, then the bytes). See lab/sim/os/README.md for the conventions.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { parse } from 'yaml';

/** A lab image starts with this line; anything else boots nothing. */
export const LAB_IMAGE_MAGIC = 'IRONFLOW-LAB-IMAGE';
const MiB = 1024 * 1024;
const HEADER = /^IRONFLOW-USERDATA 1 (\d+) ([0-9a-f]{64})\n/;

export type OsRole = 'control-plane' | 'worker';

export interface LabUserData {
  role: OsRole;
  cluster: string;
  /** Where the workload cluster's admin kubeconfig is (a host path: the lab's stand-in for a join token). */
  controlPlaneKubeconfig?: string;
  /** How often the node posts its status and renews its lease (kubelet default: 10). */
  nodeStatusUpdateSeconds: number;
  labels: Record<string, string>;
}

export type RootDisk =
  | { bootable: false; reason: string }
  | { bootable: true; rootDevice: string; userData?: LabUserData; userDataError?: string };

async function readAt(path: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** The user data bytes in the device's last MiB, or undefined when there is no header. */
export async function readUserDataRegion(path: string, sizeBytes: number): Promise<Buffer | undefined> {
  if (sizeBytes < 2 * MiB) return undefined;
  const start = sizeBytes - MiB;
  const header = HEADER.exec((await readAt(path, start, 512)).toString('latin1'));
  if (!header) return undefined;
  const len = Number(header[1]);
  if (len > MiB - 512) throw new Error(`user data header on ${path} claims ${len} bytes, more than the region holds`);
  const data = await readAt(path, start + 512, len);
  const sum = createHash('sha256').update(data).digest('hex');
  // Never echo the bytes: user data may hold secrets.
  if (data.length !== len || sum !== header[2]) throw new Error(`user data on ${path} does not match its header's length/sha256 (torn write?)`);
  return data;
}

/** Parses the lab's cloud-config-like user data: an `ironflow:` map (see README). */
export function parseLabUserData(bytes: Buffer): LabUserData {
  let doc: unknown;
  try {
    doc = parse(bytes.toString('utf8'));
  } catch (err) {
    throw new Error(`user data is not YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  const o = (doc as { ironflow?: Record<string, unknown> } | null)?.ironflow;
  if (!o || typeof o !== 'object') throw new Error('user data has no `ironflow:` map: nothing for the lab OS to run');
  if (o.role !== 'control-plane' && o.role !== 'worker') throw new Error(`user data ironflow.role must be control-plane or worker, not ${JSON.stringify(o.role)}`);
  if (typeof o.cluster !== 'string' || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(o.cluster)) {
    throw new Error('user data ironflow.cluster must be a DNS label (the workload cluster name)');
  }
  const secs = o.nodeStatusUpdateSeconds ?? 10;
  if (typeof secs !== 'number' || !(secs >= 0.2 && secs <= 300)) throw new Error('user data ironflow.nodeStatusUpdateSeconds must be a number in [0.2, 300]');
  const labels = (o.labels ?? {}) as Record<string, unknown>;
  if (typeof labels !== 'object' || Object.values(labels).some((v) => typeof v !== 'string')) throw new Error('user data ironflow.labels must map strings to strings');
  if (o.controlPlaneKubeconfig !== undefined && typeof o.controlPlaneKubeconfig !== 'string') throw new Error('user data ironflow.controlPlaneKubeconfig must be a path');
  return {
    role: o.role,
    cluster: o.cluster,
    controlPlaneKubeconfig: o.controlPlaneKubeconfig as string | undefined,
    nodeStatusUpdateSeconds: secs,
    labels: labels as Record<string, string>,
  };
}

/**
 * Picks the root device as firmware would: the first disk (in the given
 * order) that starts with a lab image. Disks that cannot be read (a faulty
 * disk is a symlink to /dev/full) are skipped.
 */
export async function findRootDisk(disks: Record<string, { path: string; sizeBytes: number }>): Promise<RootDisk> {
  for (const [name, d] of Object.entries(disks)) {
    const head = await readAt(d.path, 0, LAB_IMAGE_MAGIC.length).catch(() => Buffer.alloc(0));
    if (head.toString('latin1') !== LAB_IMAGE_MAGIC) continue;
    try {
      const bytes = await readUserDataRegion(d.path, d.sizeBytes);
      return { bootable: true, rootDevice: name, userData: bytes ? parseLabUserData(bytes) : undefined };
    } catch (err) {
      return { bootable: true, rootDevice: name, userDataError: (err as Error).message };
    }
  }
  return { bootable: false, reason: `no disk starts with ${LAB_IMAGE_MAGIC} (of ${Object.keys(disks).join(', ') || 'no disks'})` };
}
