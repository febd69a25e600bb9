/**
 * Lab scale: N simulated lab servers through the whole stack at once, as an
 * operator would do it. `kubectl apply` of the lab's manifests -> k8s-bridge
 * -> host workflows on a real Temporal dev server -> real BMC emulators
 * (sushy-tools behind the fault proxy; ipmi_sim) -> simulated servers that
 * PXE-boot over real TFTP/HTTP and run the real agent -> available; then every
 * host gets an image at once -> provisioned.
 *
 *   npm run bench -- lab-scale [hosts=50] [--ipmi=<share 0..1>] [--memory] [--limit-min=40]
 *
 * Prints the time to all-available and all-provisioned, a state histogram
 * every 15 s, how many netboots each host needed (firmware retries show up
 * here), and the CPU seconds each part used (plane = this process, Temporal,
 * kube-apiserver + etcd, sushy, ipmi_sim, agents).
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import pLimit from 'p-limit';
import pino from 'pino';
import { workflowIdFor } from '../api/names';
import { projectRoot } from '../api/project-root';
import { installCrds } from '../k8s-bridge/install-crds';
import { generatedInventory } from '../lab/inventory';
import type { BootEvent } from '../lab/sim/server';
import { startKubeApiserver } from '../workers/embedded/kube-apiserver';
import { startUpstreamWebhooks } from '../workers/embedded/upstream-webhooks';
import { startTemporalDevServer } from '../workers/embedded/temporal-dev-server';
import { loadToolPaths, requireTool } from '../workers/embedded/tools';
import { startLabBeside } from '../test/helpers/lab-beside';
import { startHostStack } from '../workers/host-stack';
import { bundleWorkflows } from '../workers/lifecycle-worker';

const args = process.argv.slice(2);
const N = Number(args.find((a) => /^\d+$/.test(a)) ?? 50);
const IPMI_SHARE = Number(args.find((a) => a.startsWith('--ipmi='))?.slice(7) ?? 0.25);
const MEMORY = args.includes('--memory');
const LIMIT_MS = Number(args.find((a) => a.startsWith('--limit-min='))?.slice(12) ?? 40) * 60_000;
const BMH = { group: 'metal3.io', version: 'v1alpha1', plural: 'baremetalhosts' };
const ROOT = projectRoot(__dirname);

/** CPU seconds (user+system, children reaped included) of every process whose command line matches. */
function cpuSecondsByPart(dir: string): Record<string, number> {
  const hz = 100;
  const parts: Record<string, number> = {};
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // utime + stime, and for this process also its reaped children (the agents' busybox, ipmitool).
      const secs = (Number(f[11]) + Number(f[12]) + (Number(pid) === process.pid ? Number(f[13]) + Number(f[14]) : 0)) / hz;
      const part = Number(pid) === process.pid ? 'plane+lab process (worker, bridge, PXE, sims, agents)' : !cmd.includes(dir) && !cmd.includes('temporal') ? undefined
        : /sushy-emulator/.test(cmd) ? 'sushy-emulator' : /ipmi_sim/.test(cmd) ? 'ipmi_sim' : /temporal/.test(cmd) && cmd.includes(dir) ? 'temporal dev server' : /kube-apiserver/.test(cmd) ? 'kube-apiserver' : /etcd/.test(cmd) ? 'etcd' : undefined;
      if (part) parts[part] = (parts[part] ?? 0) + secs;
    } catch {
      /* gone */
    }
  }
  return parts;
}

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const tools = loadToolPaths();
  const dir = mkdtempSync(join(tmpdir(), 'ironflow-lab-scale-'));
  const log = pino({ level: 'info' }, pino.destination({ dest: join(dir, 'plane.log'), sync: false }));
  const t0 = Date.now();
  const [temporal, kube] = await Promise.all([
    startTemporalDevServer({ binary: tools.temporal, logDir: join(dir, 'logs'), dbFile: MEMORY ? undefined : join(dir, 'temporal.db') }),
    startKubeApiserver({ kubeApiserverBinary: tools.kubeApiserver, kubeControllerManagerBinary: tools.kubeControllerManager, etcdBinary: tools.etcd, dataDir: join(dir, 'kube'), logDir: join(dir, 'logs'), kubeconfigPath: join(dir, 'kubeconfig') }),
  ]);
  const webhooks = await startUpstreamWebhooks({ binary: requireTool(tools.upstreamWebhooks, 'upstreamWebhooks'), kubeconfigPath: kube.kubeconfigPath, dataDir: join(dir, 'webhooks'), logDir: join(dir, 'logs'), openssl: tools.openssl });
  const kc = new KubeConfig();
  kc.loadFromFile(kube.kubeconfigPath);
  await installCrds(kc, { webhooks });
  const connection = await Connection.connect({ address: temporal.address });
  const nativeConnection = await NativeConnection.connect({ address: temporal.address });
  const client = new Client({ connection, namespace: temporal.namespace });
  const inventory = generatedInventory(N, { namespace: 'scale' });
  const ipmiCount = Math.round(N * IPMI_SHARE);
  for (const s of inventory.servers.slice(N - ipmiCount)) s.bmc.protocol = 'ipmi';
  const netboots = new Map<string, number>();
  const netbootMs: number[] = [];
  const failures: string[] = [];
  /** Per host, the time of each lab event kind (first after `phaseStart`), for the phase breakdown. */
  const timeline = new Map<string, Array<{ at: number; e: BootEvent }>>();
  const onEvent = (server: string, e: BootEvent) => {
    timeline.set(server, [...(timeline.get(server) ?? []), { at: Date.now(), e }]);
    log.info({ component: 'lab', server, ...e }, `lab ${server}: ${e.kind}`);
    if (e.kind === 'netboot' && e.script === 'agent') {
      netboots.set(server, (netboots.get(server) ?? 0) + 1);
      netbootMs.push(e.ms);
    }
    if (e.kind === 'boot-failed' || e.kind === 'netboot-failed') failures.push(`${server}: ${e.kind}: ${e.reason}`);
  };
  const stack = await startHostStack({
    kc,
    client,
    connection: nativeConnection,
    namespace: temporal.namespace,
    workflowBundle: await bundleWorkflows(),
    stateDir: join(dir, 'state'),
    agentBootDir: join(ROOT, '.ironflow', 'boot'),
    provisioning: { bindHost: '127.0.0.1', httpPort: 0, tftpPort: 0 },
    bmcLoopbackOnly: true,
    log,
  });
  // The lab beside the stack, as npm start runs them side by side.
  const labBeside = await startLabBeside(stack, { inventory, stateDir: join(dir, 'state'), log, onEvent });
  // Ctrl-C: stop the lab and the servers this run started (no orphaned emulators).
  process.once('SIGINT', () => {
    console.log('interrupted: stopping');
    void labBeside.stop().then(() => stack.stop()).then(() => webhooks.stop()).then(() => Promise.all([kube.stop(), temporal.stop()])).finally(() => process.exit(130));
  });
  const labStartedS = (Date.now() - t0) / 1000;
  console.log(`lab-scale: ${N} hosts (${N - ipmiCount} Redfish, ${ipmiCount} IPMI), Temporal ${MEMORY ? 'in memory' : 'SQLite file'}, ${cpus().length} cores; plane + lab up in ${labStartedS.toFixed(1)} s; work dir ${dir}`);
  const rssAfterLab = process.memoryUsage().rss / 2 ** 20;
  const fds = () => readdirSync('/proc/self/fd').length;
  console.log(`plane+lab process: RSS ${rssAfterLab.toFixed(0)} MiB, ${fds()} open fds after lab start`);

  const custom = kc.makeApiClient(CustomObjectsApi);
  const states = async () => {
    const list = (await custom.listNamespacedCustomObject({ ...BMH, namespace: 'scale' })) as { items: Array<{ metadata: { name: string }; status?: { provisioning?: { state?: string }; errorType?: string } }> };
    const hist: Record<string, number> = {};
    for (const h of list.items) {
      const k = (h.status?.provisioning?.state ?? '(none)') + (h.status?.errorType ? ` [${h.status.errorType}]` : '');
      hist[k] = (hist[k] ?? 0) + 1;
    }
    return { hist, items: list.items };
  };
  const firstSeen = new Map<string, number>();
  const waitAll = async (state: string, since: number) => {
    let last = '';
    let lastPrint = 0;
    while (Date.now() - since < LIMIT_MS) {
      const { hist, items } = await states();
      for (const h of items) if (h.status?.provisioning?.state === state && !firstSeen.has(`${state}/${h.metadata.name}`)) firstSeen.set(`${state}/${h.metadata.name}`, Date.now());
      const line = JSON.stringify(hist);
      if (Date.now() - lastPrint > 15_000 || (line !== last && hist[state] === N)) {
        console.log(`  +${((Date.now() - since) / 1000).toFixed(0).padStart(5)} s ${line}`);
        lastPrint = Date.now();
      }
      last = line;
      if (hist[state] === N) return (Date.now() - since) / 1000;
      await sleep(2_000);
    }
    throw new Error(`not all ${N} hosts reached ${state} within ${LIMIT_MS / 60_000} min: ${last}`);
  };

  /** Where each host's time went in one phase: to its netboot, the boot itself, the agent, and after the agent to the status. */
  const phases = (name: string, t0: number, state: string) => {
    const parts: Record<string, number[]> = { 'start -> netboot begins (workflow, BMC power on)': [], 'netboot (scripts, kernel, initramfs)': [], 'agent run (boot -> agent exit)': [], 'agent exit -> status seen (2 s poll)': [] };
    for (const s of inventory.servers) {
      const ev = (timeline.get(s.name) ?? []).filter((x) => x.at >= t0);
      const boot = ev.find((x) => x.e.kind === 'netboot' && x.e.script === 'agent');
      const exit = ev.find((x) => x.e.kind === 'agent-exit');
      const seen = firstSeen.get(`${state}/${s.name}`);
      if (!boot || !exit || !seen) continue;
      const ms = (boot.e as { ms: number }).ms;
      parts['start -> netboot begins (workflow, BMC power on)']!.push(boot.at - ms - t0);
      parts['netboot (scripts, kernel, initramfs)']!.push(ms);
      parts['agent run (boot -> agent exit)']!.push(exit.at - boot.at);
      parts['agent exit -> status seen (2 s poll)']!.push(seen - exit.at);
    }
    const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;
    console.log(`  ${name} per host (p50 / p90 / max, s):`);
    for (const [k, xs] of Object.entries(parts)) console.log(`    ${k.padEnd(50)} ${(q(xs, 0.5) / 1000).toFixed(1)} / ${(q(xs, 0.9) / 1000).toFixed(1)} / ${(Math.max(...xs) / 1000).toFixed(1)}`);
  };

  /**
   * From the host workflows' own histories: how long activities and workflow
   * tasks waited for the worker (schedule -> start) and ran (start -> close),
   * by activity type. Waiting is the worker's CPU or its concurrency limits;
   * running is the activity's own work (BMC calls, status writes, agent waits).
   */
  const historyBreakdown = async () => {
    const secs = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) => Number(t?.seconds ?? 0) + (t?.nanos ?? 0) / 1e9;
    const wait: Record<string, number[]> = {};
    const ran: Record<string, number[]> = {};
    const add = (m: Record<string, number[]>, k: string, v: number) => (m[k] ??= []).push(v);
    const retried: Record<string, number> = {};
    for (const s of inventory.servers.slice(0, 20)) {
      const events = (await client.workflow.getHandle(workflowIdFor('BareMetalHost', 'scale', s.name)).fetchHistory()).events ?? [];
      const byId = new Map(events.map((e) => [Number(e.eventId), e]));
      for (const e of events) {
        const st = e.activityTaskStartedEventAttributes;
        if (st) {
          const sched = byId.get(Number(st.scheduledEventId));
          const type = sched?.activityTaskScheduledEventAttributes?.activityType?.name ?? '?';
          add(wait, type, secs(e.eventTime) - secs(sched?.eventTime));
          // Started is recorded for the last attempt: its wait includes earlier failed attempts and their backoff.
          if ((st.attempt ?? 1) > 1) {
            const k = `${type} attempt ${st.attempt}: ${(st.lastFailure?.message ?? '?').slice(0, 140)}`;
            retried[k] = (retried[k] ?? 0) + 1;
          }
        }
        const done = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes ?? e.activityTaskTimedOutEventAttributes;
        if (done) {
          const sched = byId.get(Number(done.scheduledEventId));
          const started = byId.get(Number(done.startedEventId));
          add(ran, sched?.activityTaskScheduledEventAttributes?.activityType?.name ?? '?', secs(e.eventTime) - secs(started?.eventTime));
        }
        if (e.workflowTaskStartedEventAttributes) {
          add(wait, '(workflow task)', secs(e.eventTime) - secs(byId.get(Number(e.eventId) - 1)?.eventTime));
        }
        if (e.workflowTaskCompletedEventAttributes) add(ran, '(workflow task)', secs(e.eventTime) - secs(byId.get(Number(e.workflowTaskCompletedEventAttributes.startedEventId))?.eventTime));
      }
    }
    const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;
    console.log('  from 20 host histories (n, wait for worker p50/p90/max s, run p50/p90/max s):');
    for (const k of Object.keys(ran).sort()) {
      const w = wait[k] ?? [];
      const r = ran[k]!;
      console.log(`    ${k.padEnd(28)} n=${String(r.length).padStart(4)}  wait ${q(w, 0.5).toFixed(2)} / ${q(w, 0.9).toFixed(2)} / ${Math.max(...w).toFixed(2)}  run ${q(r, 0.5).toFixed(2)} / ${q(r, 0.9).toFixed(2)} / ${Math.max(...r).toFixed(2)}`);
    }
    for (const [k, n] of Object.entries(retried).sort((a, b) => b[1] - a[1]).slice(0, 8)) console.log(`    retried x${n}: ${k}`);
  };

  try {
    const tApply = Date.now();
    execFileSync(tools.kubectl, ['--kubeconfig', kube.kubeconfigPath, 'apply', '-f', labBeside.lab.manifestsFile], { stdio: 'ignore' });
    const availableS = await waitAll('available', tApply);
    console.log(`all ${N} available ${availableS.toFixed(1)} s after kubectl apply (${((N / availableS) * 60).toFixed(1)} hosts/min)`);
    phases('inspection', tApply, 'available');

    const image = Buffer.concat([Buffer.from('IRONFLOW-LAB-SCALE\n'), randomBytes(2 ** 20)]);
    writeFileSync(join(stack.provisioning.filesDir, 'scale.img'), image);
    const checksum = createHash('sha256').update(image).digest('hex');
    const tProv = Date.now();
    const limit = pLimit(16);
    await Promise.all(
      inventory.servers.map((s) =>
        limit(() =>
          custom.patchNamespacedCustomObject(
            { ...BMH, namespace: 'scale', name: s.name, body: { spec: { online: true, image: { url: `${stack.provisioning.httpUrl}/files/scale.img`, checksum, checksumType: 'sha256' } } } },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
          ),
        ),
      ),
    );
    const provisionedS = await waitAll('provisioned', tProv);
    console.log(`all ${N} provisioned ${provisionedS.toFixed(1)} s after the image patch; ${(availableS + provisionedS).toFixed(1)} s from kubectl apply`);
    phases('provisioning', tProv, 'provisioned');
    await historyBreakdown();
    const boots = [...netboots.values()];
    console.log(`agent netboots per host: min ${Math.min(...boots)} max ${Math.max(...boots)} total ${boots.reduce((a, b) => a + b, 0)} (2 = inspect + deploy); failed boot attempts (each retried by the firmware): ${failures.length}`);
    const sorted = [...netbootMs].sort((a, b) => a - b);
    console.log(`simulated network boot (chain script to kernel + initramfs loaded): p50 ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted.at(-1)} ms`);
    for (const f of failures.slice(0, 5)) console.log(`  ${f}`);
  } finally {
    const cpu = cpuSecondsByPart(dir);
    console.log(`CPU seconds by part: ${Object.entries(cpu).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}`);
    console.log(`plane+lab process RSS after lab start ${rssAfterLab.toFixed(0)} MiB, at end ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB; ${fds()} open fds`);
    await labBeside.stop();
    await stack.stop();
    await webhooks.stop();
    await nativeConnection.close();
    await connection.close();
    await kube.stop();
    await temporal.stop();
    if (!args.includes('--keep')) rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
