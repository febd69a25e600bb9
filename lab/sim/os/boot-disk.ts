/**
 * What runs when a simulated server boots from disk: the installed lab image
 * and the user data beside it. A control-plane image starts a real
 * kube-apiserver + etcd for its workload cluster and registers its own Node;
 * a worker image registers its Node in that cluster. Both keep their Node
 * fresh (node-agent.ts) until power off, which stops everything.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { LabServer } from '../../../api/lab';
import { startWorkloadApiserver, type WorkloadApiserver } from './workload-apiserver';
import { labDiskBytes } from '../sysroot';
import { findRootDisk, type OsRole } from './disk';
import { runNodeAgent } from './node-agent';

export interface BootDiskOptions {
  server: LabServer;
  /** The server's own directory (the apiserver's etcd data lives under it). */
  workDir: string;
  /** Disk image files by disk name, in the server's disk order. */
  disks: Record<string, string>;
  /** Where workload clusters publish their kubeconfig: <clustersDir>/<cluster>/kubeconfig. Default: <workDir>/../../clusters (the lab's <lab>/servers/<name> layout). */
  clustersDir?: string;
  log?: (line: string) => void;
}

export type OsState =
  | { kind: 'none'; reason: string }
  | { kind: 'running'; rootDevice: string; role: OsRole; cluster: string; kubeconfigPath: string; kubeletVersion: string; apiserverStartMs?: number };

/** What a lab image's kubelet says it is when neither the image nor the user data names a version. */
export const DEFAULT_LAB_KUBELET_VERSION = 'v1.37.2-ironflow-lab';

export interface LabOs {
  /** Settles once the OS is up (or found nothing to run); never rejects. */
  readonly state: Promise<OsState>;
  /** Power off: stops the node heartbeat and the control plane. */
  stop(): Promise<void>;
}

/** Where a workload cluster's admin kubeconfig is published. */
export const clusterKubeconfigPath = (clustersDir: string, cluster: string) => join(clustersDir, cluster, 'kubeconfig');

export function bootDisk(o: BootDiskOptions): LabOs {
  const ac = new AbortController();
  let apiserver: WorkloadApiserver | undefined;
  let agent: Promise<void> | undefined;
  const log = (l: string) => o.log?.(`${o.server.name} os: ${l}`);

  const start = async (): Promise<OsState> => {
    const sizes = Object.fromEntries(o.server.disks.map((d) => [d.name, labDiskBytes(d.sizeGiB)]));
    const root = await findRootDisk(Object.fromEntries(Object.entries(o.disks).map(([n, path]) => [n, { path, sizeBytes: sizes[n] ?? 0 }])));
    if (!root.bootable) return { kind: 'none', reason: root.reason };
    if (!root.userData) return { kind: 'none', reason: `lab image on ${root.rootDevice} but ${root.userDataError ?? 'no user data'}: it boots to a login prompt` };
    const ud = root.userData;
    const clustersDir = o.clustersDir ?? join(o.workDir, '..', '..', 'clusters');
    let kubeconfigPath = ud.controlPlaneKubeconfig ?? clusterKubeconfigPath(clustersDir, ud.cluster);
    let apiserverStartMs: number | undefined;
    if (ud.role === 'control-plane') {
      const dir = join(o.workDir, 'os', 'control-plane');
      kubeconfigPath = clusterKubeconfigPath(clustersDir, ud.cluster);
      await mkdir(join(clustersDir, ud.cluster), { recursive: true });
      const t0 = Date.now();
      apiserver = await startWorkloadApiserver({ dataDir: join(dir, 'data'), logDir: join(dir, 'logs'), kubeconfigPath });
      apiserverStartMs = Date.now() - t0;
      if (ac.signal.aborted) {
        await apiserver.stop();
        return { kind: 'none', reason: 'powered off while the control plane started' };
      }
      log(`control plane of ${ud.cluster} serves at ${apiserver.server} (${apiserverStartMs} ms); kubeconfig ${kubeconfigPath}`);
    }
    const labels = { ...ud.labels, ...(ud.role === 'control-plane' ? { 'node-role.kubernetes.io/control-plane': '' } : {}) };
    // The kubelet is the image's: its version is the image's; the bootstrap config's only when the image names none.
    const kubeletVersion = root.image.kubernetesVersion ?? ud.kubernetesVersion ?? DEFAULT_LAB_KUBELET_VERSION;
    agent = runNodeAgent({ server: o.server, kubeconfigPath, intervalMs: ud.nodeStatusUpdateSeconds * 1000, labels, kubeletVersion, signal: ac.signal, log: o.log });
    return { kind: 'running', rootDevice: root.rootDevice, role: ud.role, cluster: ud.cluster, kubeconfigPath, kubeletVersion, apiserverStartMs };
  };

  const state = start().catch((err: unknown): OsState => {
    log(`boot failed: ${(err as Error).message}`);
    return { kind: 'none', reason: (err as Error).message };
  });

  return {
    state,
    async stop() {
      ac.abort();
      await state;
      await agent;
      // Power off cannot fail: a stop error is logged, not thrown.
      await apiserver?.stop().catch((err: unknown) => log(`stopping the control plane: ${(err as Error).message}`));
    },
  };
}
