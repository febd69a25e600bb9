/**
 * Everything that makes BareMetalHosts move, given a Temporal server and a
 * management cluster: the provisioning services (PXE HTTP/TFTP + agent API),
 * the lifecycle worker with all activities, the k8s-bridge, and optionally
 * the virtual lab. `npm start` runs it; the end-to-end tests run it too.
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import type { NativeConnection, Worker, WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { TASK_QUEUES } from '../api/names';
import { AGENT_BOOT_FILES } from '../api/pxe';
import type { LabInventory } from '../api/lab';
import { startDhcp } from '../activities/pxe/dhcp';
import { startBridge, type Bridge } from '../k8s-bridge/bridge';
import { startLab, type Lab } from '../lab/lab';
import type { BootEvent } from '../lab/sim/server';
import { startDiscoveryReporter } from './discovery';
import { createLifecycleWorker } from './lifecycle-worker';
import { startProvisioning, type ProvisioningServices } from './provisioning';

export interface HostStackOptions {
  kc: KubeConfig;
  client: Client;
  connection: NativeConnection;
  namespace: string;
  taskQueue?: string;
  workflowBundle?: WorkflowBundleWithSourceMap;
  /** Must match the client's (payload encryption). */
  dataConverter?: DataConverter;
  /** Registry, boot files and lab state go under here. */
  stateDir: string;
  /** Where the agent kernel + initramfs were built (scripts/setup.sh: .ironflow/boot). Copied into the served root. */
  agentBootDir?: string;
  provisioning: { bindHost: string; httpPort: number; tftpPort: number; publicUrl?: string };
  /** Watch only this Kubernetes namespace (tests); all namespaces by default. */
  watchNamespace?: string;
  /** Namespace of the bridge's leader-election Lease (created if missing); none = no leader election. */
  leaseNamespace?: string;
  /** Refuse BMCs outside loopback (see activities/bmc/activities.ts). */
  bmcLoopbackOnly?: boolean;
  lab?: { inventory: LabInventory; onEvent?: (server: string, e: BootEvent) => void; basePort?: number };
  log: Logger;
}

export interface HostStack {
  provisioning: ProvisioningServices;
  worker: Worker;
  bridge: Bridge;
  lab?: Lab;
  stop(): Promise<void>;
}

async function ensureNamespace(kc: KubeConfig, name: string): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  try {
    await core.createNamespace({ body: { metadata: { name } } });
  } catch (err) {
    if ((err as { code?: number }).code !== 409) throw err;
  }
}

export async function startHostStack(o: HostStackOptions): Promise<HostStack> {
  const undo: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const f of undo.reverse()) await f().catch((err: unknown) => o.log.error({ err }, 'host stack stop step failed'));
    undo.length = 0;
  };
  try {
    const filesDir = join(o.stateDir, 'pxe', 'files');
    mkdirSync(filesDir, { recursive: true });
    // Copies, not symlinks: the TFTP/HTTP servers refuse anything that resolves outside their root.
    if (o.agentBootDir) {
      for (const f of Object.values(AGENT_BOOT_FILES)) {
        const src = join(o.agentBootDir, f);
        if (!existsSync(src)) throw new Error(`${src} is missing: run \`npm run setup\` (it builds the agent ramdisk with agent/build-initramfs.sh)`);
        copyFileSync(src, join(filesDir, f));
      }
    }
    const provisioning = await startProvisioning({
      stateDir: join(o.stateDir, 'pxe'),
      filesDir,
      ...o.provisioning,
      client: o.client,
      kc: o.kc,
      log: o.log,
    });
    undo.push(() => provisioning.stop());
    // Unknown MACs that PXE-booted become unaccepted Servers (workers/discovery.ts).
    const discovery = startDiscoveryReporter({ kc: o.kc, sessions: provisioning.sessions, log: o.log });
    undo.push(() => discovery.stop());

    const worker = await createLifecycleWorker({
      connection: o.connection,
      namespace: o.namespace,
      taskQueue: o.taskQueue ?? TASK_QUEUES.lifecycle,
      workflowBundle: o.workflowBundle,
      dataConverter: o.dataConverter,
      deps: { kc: o.kc, log: o.log, ...provisioning.activityDeps, bmcLoopbackOnly: o.bmcLoopbackOnly },
    });
    const running = worker.run();
    running.catch((err: unknown) => o.log.error({ err }, 'lifecycle worker stopped with an error'));
    undo.push(async () => {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running.catch(() => undefined);
    });

    let lab: Lab | undefined;
    if (o.lab) {
      lab = await startLab({
        inventory: o.lab.inventory,
        workDir: join(o.stateDir, 'lab'),
        pxe: { httpUrl: provisioning.httpUrl, tftp: provisioning.tftp },
        basePort: o.lab.basePort,
        onEvent: o.lab.onEvent ?? ((server, e) => o.log.info({ component: 'lab', server, ...e }, `lab ${server}: ${e.kind}`)),
        log: (line) => o.log.debug({ component: 'lab' }, line),
      });
      undo.push(() => lab!.stop());
      const net = lab.provisioningNetwork;
      if (net) {
        // Ironflow's DHCP on the lab's provisioning network (QEMU machines).
        const dhcp = await startDhcp({
          interface: net.interface,
          netns: net.netns,
          range: { mode: 'serve', start: '10.99.0.100', end: '10.99.0.199', leaseTime: '1h' },
          chainUrl: net.bootUrl,
          stateDir: join(o.stateDir, 'pxe', 'dhcp'),
          log: o.log.child({ component: 'dhcp' }),
        });
        undo.push(() => dhcp.stop());
      }
    }

    if (o.leaseNamespace) await ensureNamespace(o.kc, o.leaseNamespace);
    const bridge = startBridge({
      kc: o.kc,
      client: o.client,
      taskQueue: o.taskQueue ?? TASK_QUEUES.lifecycle,
      log: o.log,
      ...(o.watchNamespace ? { namespace: o.watchNamespace } : {}),
      ...(o.leaseNamespace ? { leaderElection: { namespace: o.leaseNamespace } } : {}),
    });
    // The bridge stops before the worker: no signal is sent to a plane that is going away.
    undo.push(() => bridge.stop());
    await bridge.ready;

    return { provisioning, worker, bridge, lab, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
