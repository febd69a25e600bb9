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
  /** The version the bootstrap config asks for (kubeadm's kubernetesVersion); the image's own version wins. */
  kubernetesVersion?: string;
  labels: Record<string, string>;
}

/** What the image's first line says about itself: `IRONFLOW-LAB-IMAGE 1 kubernetesVersion=v1.34.1`. */
export interface LabImageMetadata {
  /** The Kubernetes version the image's kubelet is built for; the Node reports it. */
  kubernetesVersion?: string;
}

export type RootDisk =
  | { bootable: false; reason: string }
  | { bootable: true; rootDevice: string; image: LabImageMetadata; userData?: LabUserData; userDataError?: string };

const K8S_VERSION = /^v\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$/;

/** Parses the `key=value` words after `IRONFLOW-LAB-IMAGE 1` on the image's first line; unknown keys are ignored. */
export function parseImageHeader(firstLine: string): LabImageMetadata {
  const meta: LabImageMetadata = {};
  for (const word of firstLine.trim().split(/\s+/).slice(2)) {
    const [k, v] = word.split('=', 2);
    if (k === 'kubernetesVersion' && v && K8S_VERSION.test(v)) meta.kubernetesVersion = v;
  }
  return meta;
}

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
  if (o.kubernetesVersion !== undefined && (typeof o.kubernetesVersion !== 'string' || !K8S_VERSION.test(o.kubernetesVersion))) {
    throw new Error('user data ironflow.kubernetesVersion must look like v1.34.1');
  }
  return {
    role: o.role,
    cluster: o.cluster,
    controlPlaneKubeconfig: o.controlPlaneKubeconfig as string | undefined,
    nodeStatusUpdateSeconds: secs,
    kubernetesVersion: o.kubernetesVersion as string | undefined,
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
    const head = (await readAt(d.path, 0, 256).catch(() => Buffer.alloc(0))).toString('latin1');
    if (!head.startsWith(LAB_IMAGE_MAGIC)) continue;
    const image = parseImageHeader(head.split('\n')[0] ?? '');
    try {
      const bytes = await readUserDataRegion(d.path, d.sizeBytes);
      return { bootable: true, rootDevice: name, image, userData: bytes ? parseLabUserData(bytes) : undefined };
    } catch (err) {
      return { bootable: true, rootDevice: name, image, userDataError: (err as Error).message };
    }
  }
  return { bootable: false, reason: `no disk starts with ${LAB_IMAGE_MAGIC} (of ${Object.keys(disks).join(', ') || 'no disks'})` };
}
