/**
 * Everything that makes BareMetalHosts move, given a Temporal server and a
 * management cluster: the provisioning services (PXE HTTP/TFTP + agent API,
 * optionally DHCP on a provisioning network), the lifecycle worker with all
 * activities and the k8s-bridge. `npm start` runs it; the end-to-end tests
 * run it too. The virtual lab is no part of it: it runs beside the plane as
 * its own process (lab/main.ts), the way real servers sit beside a real one.
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
import { startDhcp } from '../activities/pxe/dhcp';
import { startBridge, type Bridge } from '../k8s-bridge/bridge';
import type { DhcpConfig } from './config';
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
  /** Registry, boot files and DHCP state go under here. */
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
  /** Serve DHCP (dnsmasq) on this provisioning network. */
  dhcp?: DhcpConfig;
  log: Logger;
}

export interface HostStack {
  provisioning: ProvisioningServices;
  worker: Worker;
  bridge: Bridge;
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

    if (o.dhcp) {
      // Ironflow's DHCP on the provisioning network (in the lab: the QEMU machines' bridge).
      const dhcp = await startDhcp({
        interface: o.dhcp.interface,
        netns: o.dhcp.netns,
        range: { mode: 'serve', start: o.dhcp.range.start, end: o.dhcp.range.end, leaseTime: '1h' },
        chainUrl: o.dhcp.bootUrl,
        stateDir: join(o.stateDir, 'pxe', 'dhcp'),
        log: o.log.child({ component: 'dhcp' }),
      });
      undo.push(() => dhcp.stop());
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

    return { provisioning, worker, bridge, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
