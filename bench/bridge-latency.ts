/**
 * k8s-bridge latency: with BENCH_WATCHED (default 1000) BareMetalHosts already
 * watched, how long from `apply` of a new host to its workflow being started,
 * p50/p99 over BENCH_MEASURED (default 200) hosts applied at BENCH_RATE/s.
 *
 * Peer, measured in the same run on the same servers: @kubernetes/client-node's
 * stock informer + a direct client.workflow.start per ADDED object (no
 * finalizer, no coalescing, no leader election) — the least a bridge can do.
 * The bridge also writes a finalizer before signalling, so it pays one more
 * API round-trip per new object.
 *
 * Starts its own Temporal dev server and kube-apiserver (nothing shared with
 * other runs). Run from the repository root, e.g. after `npx tsc --outDir /tmp/b`:
 *   node /tmp/b/bench/bridge-latency.js
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, CustomObjectsApi, KubeConfig, makeInformer, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { Client, Connection, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import pLimit from 'p-limit';
import pino from 'pino';
import { HOST_MESSAGES } from '../api/host';
import { workflowIdFor } from '../api/names';
import { startBridge } from '../k8s-bridge/bridge';
import { loadCrds } from '../k8s-bridge/install-crds';
import { observeHost } from '../k8s-bridge/observe-host';
import { startKubeApiserver } from '../workers/embedded/kube-apiserver';
import { startTemporalDevServer } from '../workers/embedded/temporal-dev-server';
import { loadToolPaths } from '../workers/embedded/tools';

const WATCHED = Number(process.env.BENCH_WATCHED ?? 1000);
const MEASURED = Number(process.env.BENCH_MEASURED ?? 200);
const RATE = Number(process.env.BENCH_RATE ?? 50);
/** Calls in flight at once, the same for the bridge and the peer. */
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const BMH = { group: 'metal3.io', version: 'v1alpha1', plural: 'baremetalhosts' };
const log = pino({ level: 'warn' });

const host = (name: string) => ({
  apiVersion: 'metal3.io/v1alpha1',
  kind: 'BareMetalHost',
  metadata: { name },
  spec: { online: true, bmc: { address: 'ipmi://127.0.0.1:6230', credentialsName: `${name}-bmc` } },
});

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

async function createMany(custom: CustomObjectsApi, namespace: string, names: string[], ratePerSecond?: number): Promise<Map<string, number>> {
  const applied = new Map<string, number>();
  const limit = pLimit(8);
  const t0 = Date.now();
  await Promise.all(
    names.map((name, i) =>
      limit(async () => {
        if (ratePerSecond) await sleep(Math.max(0, t0 + (i * 1000) / ratePerSecond - Date.now()));
        applied.set(name, Date.now());
        await custom.createNamespacedCustomObject({ ...BMH, namespace, body: host(name) });
      }),
    ),
  );
  return applied;
}

async function startTimes(client: Client, namespace: string, names: string[], deadlineMs: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const limit = pLimit(16);
  while (out.size < names.length && Date.now() < deadlineMs) {
    await Promise.all(
      names
        .filter((n) => !out.has(n))
        .map((n) =>
          limit(async () => {
            const d = await client.workflow.getHandle(workflowIdFor('BareMetalHost', namespace, n)).describe().catch(() => undefined);
            if (d) out.set(n, d.startTime.getTime());
          }),
        ),
    );
    if (out.size < names.length) await sleep(200);
  }
  return out;
}

interface Result { name: string; syncMs: number; p50: number; p99: number; max: number; missing: number }

async function measure(name: string, kc: KubeConfig, client: Client, namespace: string, run: () => Promise<{ ready: Promise<void>; stop(): Promise<void> }>): Promise<Result> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
  const watched = Array.from({ length: WATCHED }, (_, i) => `w-${i}`);
  await createMany(custom, namespace, watched);
  const t0 = Date.now();
  const subject = await run();
  await subject.ready;
  const syncMs = Date.now() - t0;
  const measured = Array.from({ length: MEASURED }, (_, i) => `m-${i}`);
  const applied = await createMany(custom, namespace, measured, RATE);
  const started = await startTimes(client, namespace, measured, Date.now() + 60_000);
  await subject.stop();
  const lat = measured.filter((n) => started.has(n)).map((n) => (started.get(n) as number) - (applied.get(n) as number)).sort((a, b) => a - b);
  return { name, syncMs, p50: pct(lat, 50), p99: pct(lat, 99), max: lat.at(-1) ?? NaN, missing: measured.length - lat.length };
}

async function main(): Promise<void> {
  const tools = loadToolPaths();
  const dir = mkdtempSync(join(tmpdir(), 'ironflow-bench-bridge-'));
  const [temporal, kube] = await Promise.all([
    startTemporalDevServer({ binary: tools.temporal, logDir: join(dir, 'logs') }),
    startKubeApiserver({ kubeApiserverBinary: tools.kubeApiserver, kubeControllerManagerBinary: tools.kubeControllerManager, etcdBinary: tools.etcd, dataDir: join(dir, 'kube'), logDir: join(dir, 'logs'), kubeconfigPath: join(dir, 'kubeconfig') }),
  ]);
  const connection = await Connection.connect({ address: temporal.address });
  const client = new Client({ connection, namespace: temporal.namespace });
  try {
    const kc = new KubeConfig();
    kc.loadFromFile(kube.kubeconfigPath);
    const generic = kc.makeApiClient(CustomObjectsApi);
    for (const crd of loadCrds(join(process.cwd(), 'api', 'crds')).filter((c) => c.spec.group === 'metal3.io')) {
      await generic.patchClusterCustomObject(
        { group: 'apiextensions.k8s.io', version: 'v1', plural: 'customresourcedefinitions', name: crd.metadata?.name ?? '', body: crd, fieldManager: 'bench', force: true },
        setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
      );
    }
    await sleep(2000); // CRD established

    const peer = await measure('peer: informer + workflow.start', kc, client, 'bench-peer', async () => {
      const queue = 'bench-peer';
      const limit = pLimit(CONCURRENCY);
      const path = '/apis/metal3.io/v1alpha1/namespaces/bench-peer/baremetalhosts';
      const informer = makeInformer(kc, path, () => generic.listNamespacedCustomObject({ ...BMH, namespace: 'bench-peer' }) as never);
      const pending = new Set<Promise<unknown>>();
      informer.on('add', (obj) => {
        const o = obj as unknown as Parameters<typeof observeHost>[0];
        const p = limit(() =>
          client.workflow
            .start('hostLifecycle', { workflowId: workflowIdFor('BareMetalHost', 'bench-peer', o.metadata.name ?? ''), taskQueue: queue, args: [{ ref: { namespace: 'bench-peer', name: o.metadata.name }, observation: observeHost(o) }] })
            .catch((e: unknown) => (e instanceof WorkflowExecutionAlreadyStartedError ? undefined : Promise.reject(e))),
        );
        pending.add(p);
        void p.finally(() => pending.delete(p));
      });
      await informer.start();
      const ready = (async () => {
        while (pending.size > 0 || limit.activeCount + limit.pendingCount > 0) await sleep(20);
      })();
      return { ready, stop: () => informer.stop() };
    });

    let stats = '';
    const bridge = await measure('ironflow k8s-bridge', kc, client, 'bench-bridge', async () => {
      const b = startBridge({ kc, client, taskQueue: 'bench-bridge', namespace: 'bench-bridge', log, concurrency: CONCURRENCY });
      const line = (label: string, s: ReturnType<typeof b.stats>) =>
        `bridge ${label}: ${s.signals} signals, mean finalizer patch ${(s.finalizerMs / Math.max(1, s.signals)).toFixed(1)} ms, mean signal-with-start ${(s.signalMs / Math.max(1, s.signals)).toFixed(1)} ms`;
      let atReady = b.stats();
      return {
        ready: b.ready.then(() => {
          atReady = b.stats();
        }),
        stop: async () => {
          const s = b.stats();
          const after = { ...s, signals: s.signals - atReady.signals, finalizerMs: s.finalizerMs - atReady.finalizerMs, signalMs: s.signalMs - atReady.signalMs };
          stats = `${line('initial sync', atReady)}\n${line('measured phase', after)}`;
          await b.stop();
        },
      };
    });

    const fmt = (r: Result) =>
      `${r.name.padEnd(34)} initial sync of ${WATCHED}: ${String(r.syncMs).padStart(6)} ms   apply->workflow started p50 ${String(r.p50).padStart(5)} ms  p99 ${String(r.p99).padStart(5)} ms  max ${String(r.max).padStart(5)} ms  missing ${r.missing}`;
    process.stdout.write(`k8s-bridge latency (${WATCHED} hosts watched, ${MEASURED} new hosts at ${RATE}/s; signal name ${HOST_MESSAGES.observed})\n`);
    process.stdout.write(`${fmt(peer)}\n${fmt(bridge)}\n${stats}\n`);
    process.stdout.write(`ratio bridge/peer: p50 ${(bridge.p50 / peer.p50).toFixed(2)}x  p99 ${(bridge.p99 / peer.p99).toFixed(2)}x  initial sync ${(bridge.syncMs / peer.syncMs).toFixed(2)}x   target p99 < 1000 ms: ${bridge.p99 < 1000 ? 'met' : 'MISSED'}\n`);
  } finally {
    await connection.close();
    await Promise.all([temporal.stop(), kube.stop()]);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
