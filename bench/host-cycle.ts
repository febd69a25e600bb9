/**
 * Host-cycle benchmark: N hosts through registering -> inspecting ->
 * available -> provisioning -> provisioned -> deprovisioning -> available ->
 * deleted, on a real Temporal dev server, with zero-delay in-memory hardware
 * (the workflow and Temporal are what is measured). The peer, in the same
 * run, is the orchestration floor: a cycle-shaped workflow with no-op
 * activities and no decisions (bench/workflows/host-cycle-floor.ts).
 *
 *   npm run bench -- host-cycle [hosts=200] [--sqlite]
 *
 * Prints hosts/minute, events per host history, worker RSS, and the ratio
 * Ironflow/floor. Targets (issue 5): 1000 hosts < 10 min on 2 cores, < 300 events per cycle.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { Context } from '@temporalio/activity';
import { DefaultLogger, NativeConnection, Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';
import pLimit from 'p-limit';
import type { HostObservation } from '../api/host';
import { HOST_MESSAGES } from '../api/host';
import { workflowIdFor } from '../api/names';
import { startTemporalDevServer } from '../workers/embedded/temporal-dev-server';
import { loadToolPaths } from '../workers/embedded/tools';
import { WORKFLOWS_PATH } from '../workers/lifecycle-worker';
import { createFakeFleet } from '../test/helpers/fake-host-activities';

const args = process.argv.slice(2);
const N = Number(args.find((a) => /^\d+$/.test(a)) ?? 200);
const SQLITE = args.includes('--sqlite');
const LIMIT_MS = 15 * 60_000;

const silent = { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

function rssSampler() {
  let peak = 0;
  const t = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 200);
  return { stop: () => (clearInterval(t), Math.max(peak, process.memoryUsage().rss)) };
}

async function eventsPerHost(client: Client, ids: string[]): Promise<number> {
  const sample = ids.slice(0, 20);
  let total = 0;
  for (const id of sample) total += (await client.workflow.getHandle(id!).fetchHistory()).events?.length ?? 0;
  return total / sample.length;
}

const obs = (rv: number, spec: Partial<HostObservation['spec']> = {}, deleting = false): HostObservation => ({
  generation: 1,
  resourceVersion: String(rv),
  spec: { online: false, bmc: { address: 'redfish+http://127.0.0.1:1/redfish/v1/Systems/x', credentialsName: 'bmc' }, bootMACAddress: '52:54:00:00:00:01', automatedCleaningMode: 'metadata', ...spec },
  paused: false,
  detached: false,
  preciousData: false,
  deleting,
});
const IMAGE = { url: 'http://127.0.0.1:1/os.img', checksum: 'a'.repeat(64) };

interface PhaseResult {
  seconds: number;
  hostsPerMinute: number;
  events: number;
  rssMiB: number;
}

async function runIronflow(client: Client, conn: NativeConnection, namespace: string): Promise<PhaseResult> {
  const taskQueue = 'bench-ironflow';
  const phase = new Map<string, number>();
  const signal = (id: string, o: HostObservation) => void client.workflow.getHandle(id).signal(HOST_MESSAGES.observed, o).catch(() => undefined);
  const fleet = createFakeFleet(() => client, {
    agentDelayMs: 0,
    keepStatuses: false,
    onStatus: (host, status) => {
      const id = workflowIdFor('BareMetalHost', host.namespace, host.name);
      const p = phase.get(id) ?? 0;
      const st = status.provisioning.state;
      const next = p === 0 && st === 'available' ? obs(2, { image: IMAGE }) : p === 1 && st === 'provisioned' ? obs(3) : p === 2 && st === 'available' ? obs(4, {}, true) : undefined;
      if (!next) return;
      phase.set(id, p + 1);
      signal(id, next);
    },
  });
  const worker = await Worker.create({ connection: conn, namespace, taskQueue, workflowBundle: await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: silent }), activities: fleet.activities });
  const ids = Array.from({ length: N }, (_, i) => workflowIdFor('BareMetalHost', 'bench', `h-${i}`));
  const rss = rssSampler();
  const t0 = Date.now();
  await worker.runUntil(async () => {
    const limit = pLimit(50);
    await Promise.all(
      ids.map((workflowId, i) =>
        limit(() => client.workflow.signalWithStart('hostLifecycle', { workflowId, taskQueue, args: [{ ref: { namespace: 'bench', name: `h-${i}` }, observation: obs(1) }], signal: HOST_MESSAGES.observed, signalArgs: [obs(1)] })),
      ),
    );
    await Promise.race([Promise.all(ids.map((id) => client.workflow.getHandle(id).result())), new Promise((_, rej) => setTimeout(() => rej(new Error('bench exceeded its time limit')), LIMIT_MS))]);
  });
  const seconds = (Date.now() - t0) / 1000;
  return { seconds, hostsPerMinute: (N / seconds) * 60, events: await eventsPerHost(client, ids), rssMiB: rss.stop() / 2 ** 20 };
}

async function runFloor(client: Client, conn: NativeConnection, namespace: string): Promise<PhaseResult> {
  const taskQueue = 'bench-floor';
  const statusSeen = new Map<string, number>();
  const activities = {
    async noop(step: string) {
      const id = Context.current().info.workflowExecution?.workflowId ?? '';
      const h = client.workflow.getHandle(id);
      if (step.startsWith('agent:')) void h.signal('floorAgentReport', step.slice(6)).catch(() => undefined);
      if (step === 'status:available' || step === 'status:provisioned') {
        statusSeen.set(id, (statusSeen.get(id) ?? 0) + 1);
        void h.signal('floorNext').catch(() => undefined);
      }
    },
  };
  const worker = await Worker.create({ connection: conn, namespace, taskQueue, workflowBundle: await bundleWorkflowCode({ workflowsPath: require.resolve('./workflows/host-cycle-floor'), logger: silent }), activities });
  const ids = Array.from({ length: N }, (_, i) => `floor/${i}`);
  const rss = rssSampler();
  const t0 = Date.now();
  await worker.runUntil(async () => {
    const limit = pLimit(50);
    await Promise.all(ids.map((workflowId) => limit(() => client.workflow.start('hostCycleFloor', { workflowId, taskQueue }))));
    await Promise.all(ids.map((id) => client.workflow.getHandle(id).result()));
  });
  const seconds = (Date.now() - t0) / 1000;
  return { seconds, hostsPerMinute: (N / seconds) * 60, events: await eventsPerHost(client, ids), rssMiB: rss.stop() / 2 ** 20 };
}

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const dir = mkdtempSync(join(tmpdir(), 'ironflow-bench-'));
  const server = await startTemporalDevServer({ binary: loadToolPaths().temporal, logDir: dir, dbFile: SQLITE ? join(dir, 'temporal.db') : undefined });
  try {
    const connection = await Connection.connect({ address: server.address });
    const client = new Client({ connection, namespace: server.namespace });
    const conn = await NativeConnection.connect({ address: server.address });
    console.log(`host-cycle bench: ${N} hosts, Temporal dev server ${SQLITE ? 'SQLite file' : 'in memory'}, ${cpus().length} cores`);
    const floor = await runFloor(client, conn, server.namespace);
    const ours = await runIronflow(client, conn, server.namespace);
    const row = (name: string, r: PhaseResult) =>
      console.log(`${name.padEnd(22)} ${r.seconds.toFixed(1).padStart(7)} s ${r.hostsPerMinute.toFixed(0).padStart(7)} hosts/min ${r.events.toFixed(0).padStart(5)} events/host ${r.rssMiB.toFixed(0).padStart(6)} MiB RSS`);
    row('floor (no-op cycle)', floor);
    row('ironflow hostLifecycle', ours);
    console.log(`ratio ironflow/floor: ${(ours.hostsPerMinute / floor.hostsPerMinute).toFixed(2)}x throughput, ${(ours.events / floor.events).toFixed(2)}x events`);
    console.log(`projection: 1000 hosts in ${(1000 / ours.hostsPerMinute).toFixed(1)} min (target < 10), ${ours.events.toFixed(0)} events per cycle (target < 300)`);
    await conn.close();
    await connection.close();
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
