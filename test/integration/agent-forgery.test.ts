/**
 * Issue 13's forgeries, each against the real provisioning HTTP server and
 * agent API on loopback (workers/provisioning.ts), real Temporal (a
 * stand-in host workflow per host that records agentReport signals:
 * test/helpers/workflows/agent-report-sink.ts), the real kube-apiserver
 * (BareMetalHosts and their Warning Events), and the real agent script on
 * disk image files where a disk is involved.
 *
 * Each forgery is refused and leaves the session state, the disk files and
 * the workflow's history as they were, the plane keeps answering, and a
 * Warning Event is raised where the plane has something to tell the
 * operator. The one forgery that changes state does so by design: a second
 * fetch of a boot script ends that boot (its token may be in other hands),
 * and the workflow gets exactly one invalidated report so it retries.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { temporal as proto } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import pino from 'pino';
import { Pool } from 'undici';
import { AGENT_TOKEN_HEADER, type AgentReportSignal, type ExpectedDisk } from '../../api/agent';
import type { HostRef } from '../../api/host';
import type { LabServer } from '../../api/lab';
import { workflowIdFor } from '../../api/names';
import { PXE_PATHS } from '../../api/pxe';
import { createSessionActivities, type SessionActivities } from '../../activities/agent/session-activities';
import { runAgent } from '../../lab/sim/run-agent';
import { createSysroot, labDiskBytes } from '../../lab/sim/sysroot';
import { startProvisioning, type ProvisioningServices } from '../../workers/provisioning';
import { kernelCmdline } from '../helpers/agent-lab';
import { kubeTestContext, temporalTestContext, type KubeTestContext, type TemporalTestContext } from '../helpers/env';
import { registerTestSecret } from '../helpers/secrets';
import { agentReportSink, sinkReportsQuery } from '../helpers/workflows/agent-report-sink';

const BMH = { group: 'metal3.io', version: 'v1alpha1', plural: 'baremetalhosts' } as const;
const log = pino({ level: 'silent' });

let kube: KubeTestContext;
let temporal: TemporalTestContext;
let worker: Worker;
let workerRun: Promise<void>;
let plane: ProvisioningServices;
let activities: SessionActivities;
let dir: string;
let n = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'agent-forgery-'));
  [kube, temporal] = await Promise.all([kubeTestContext('forgery'), temporalTestContext('forgery')]);
  worker = await Worker.create({
    connection: temporal.nativeConnection, namespace: temporal.namespace, taskQueue: temporal.taskQueue,
    workflowsPath: require.resolve('../helpers/workflows/agent-report-sink'),
  });
  workerRun = worker.run();
  // Production settings except where a test needs the plane on loopback: real Temporal, real Events.
  plane = await startProvisioning({
    stateDir: join(dir, 'state'), filesDir: join(dir, 'files'), bindHost: '127.0.0.1', httpPort: 0, tftpPort: 0,
    client: temporal.client, kc: kube.kc, log, pollIntervalSeconds: 0.2,
    userData: async () => Buffer.from('#cloud-config\n'),
    tuning: { warningIntervalMs: 0 },
  });
  activities = createSessionActivities({ sessions: plane.sessions, images: plane.activityDeps.images, userData: async () => Buffer.from('#cloud-config\n'), log });
}, 60_000);
afterAll(async () => {
  await plane?.stop();
  worker?.shutdown();
  await workerRun?.catch(() => undefined);
  await temporal?.close();
  await kube?.cleanup();
  await rm(dir, { recursive: true, force: true });
});

// ---- the world around a host -------------------------------------------------------------------

interface World { host: HostRef; mac: string; handle: WorkflowHandle<typeof agentReportSink> }

/** A BareMetalHost object and its (stand-in) host workflow. */
async function newHost(label: string): Promise<World> {
  const i = ++n;
  const host = { namespace: kube.namespace, name: `${label}-${i}` };
  await kube.kc.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
    ...BMH, namespace: host.namespace,
    body: { apiVersion: 'metal3.io/v1alpha1', kind: 'BareMetalHost', metadata: { name: host.name }, spec: { online: false, bmc: { address: 'redfish+http://127.0.0.1:1/redfish/v1/Systems/1', credentialsName: 'none' } } },
  });
  const handle = await temporal.client.workflow.start(agentReportSink, { workflowId: workflowIdFor('BareMetalHost', host.namespace, host.name), taskQueue: temporal.taskQueue });
  return { host, mac: `52:54:00:f0:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`, handle };
}

/** The history once the worker has finished its workflow task (a count taken mid-task would move on its own). */
async function settledHistory(w: World): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const events = (await w.handle.fetchHistory()).events ?? [];
    const last = events[events.length - 1]?.eventType;
    if (last === proto.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) return events.length;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`workflow ${w.handle.workflowId} did not settle`);
}
const signalsOf = (w: World): Promise<AgentReportSignal[]> => w.handle.query(sinkReportsQuery);

async function warningsOf(w: World): Promise<{ reason: string; message: string; uid?: string }[]> {
  await plane.warnings.settled();
  const list = await kube.kc.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: w.host.namespace, fieldSelector: `involvedObject.name=${w.host.name}` });
  return list.items.filter((e) => e.type === 'Warning').map((e) => ({ reason: e.reason ?? '', message: e.message ?? '', uid: e.involvedObject.uid }));
}

const call = async (method: string, path: string, token?: string, body?: unknown) => {
  const res = await fetch(`${plane.httpUrl}${path}`, {
    method,
    headers: { ...(token !== undefined ? { [AGENT_TOKEN_HEADER]: token } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, text: await res.text() };
};
const hostPath = (h: HostRef, what: string) => `/v1/agent/hosts/${h.namespace}/${h.name}/${what}`;
const fetchScript = async (mac: string) => {
  const res = await fetch(plane.httpUrl + PXE_PATHS.macScript(mac));
  const body = await res.text();
  const cmdline = res.ok ? kernelCmdline(body) : undefined;
  const token = /ironflow\.token=(\S+)/.exec(cmdline ?? '')?.[1];
  // The run's final scan fails on any token found in a workflow history or log.
  if (token) registerTestSecret(token);
  return { status: res.status, body, cmdline, token };
};
const planeAnswers = async () => (await fetch(plane.httpUrl + PXE_PATHS.chainScript)).status === 200;

/** What a forgery must not change: the store, the workflow's history. */
async function state(...worlds: World[]) {
  await plane.relay.idle();
  return { store: plane.sessions.snapshot(), histories: await Promise.all(worlds.map(settledHistory)) };
}

const inspectOk = (commandId: string) => ({
  commandId, type: 'inspect', status: 'ok',
  data: { cpu: { arch: 'x86_64', model: 'forged', count: 64 }, memoryMiB: 1, disks: [], nics: [], system: {} },
});

// ---- the forgeries -----------------------------------------------------------------------------

test('a lookup race for a waiting host: the old lookup by MAC and made-up tokens get nothing, and change nothing', async () => {
  const w = await newHost('race');
  const { bootId } = await activities.startAgentSession({ host: w.host, mac: w.mac, command: { id: 'i-race', type: 'inspect' } });
  const machine = await fetchScript(w.mac); // the real machine booted: its agent is on its way
  expect(machine.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
  const before = await state(w);

  const tries = [
    await call('POST', '/v1/agent/lookup', undefined, { macs: [w.mac] }),
    await call('POST', '/v1/agent/lookup', undefined, { macs: [w.mac], bootId }),
    await call('POST', '/v1/agent/lookup', randomBytes(32).toString('base64url'), { bootId }),
    await call('GET', hostPath(w.host, 'command')),
  ];
  expect(tries.map((t) => t.status)).toEqual([401, 401, 401, 401]);
  for (const t of tries) {
    expect(t.text).not.toContain(machine.token!);
    expect(t.text).not.toMatch(/"token"/);
  }
  expect(await state(w)).toEqual(before);
  expect(await planeAnswers()).toBe(true);
  // The machine's own agent is not disturbed.
  expect((await call('POST', '/v1/agent/lookup', machine.token, { bootId })).status).toBe(200);
});

test('a script race: a second fetch of a boot script gets no token and ends that boot (Warning Event; one invalidated report to the workflow; both tokens dead)', async () => {
  for (const order of ['machine first', 'forger first'] as const) {
    const w = await newHost('script-race');
    const { bootId } = await activities.startAgentSession({ host: w.host, mac: w.mac, command: { id: `i-${order.split(' ')[0]}`, type: 'inspect' } });
    const first = await fetchScript(w.mac);
    const second = await fetchScript(w.mac);
    expect([first.status, second.status]).toEqual([200, 403]);
    expect(second.body).not.toContain('ironflow.token');
    expect(second.token).toBeUndefined();
    // Whoever fetched first holds a dead token now: nothing it sends is accepted.
    expect((await call('POST', hostPath(w.host, 'reports'), first.token, inspectOk(`i-${order.split(' ')[0]}`))).status).toBe(403);
    await plane.relay.idle();
    const got = await signalsOf(w);
    expect(got).toEqual([{ bootId, invalidated: true, receivedAt: expect.any(String), report: expect.objectContaining({ status: 'failed', message: expect.stringContaining('fetched a second time') }) }]);
    const events = await warningsOf(w);
    expect(events).toContainEqual(expect.objectContaining({ reason: 'AgentBootInvalidated', uid: expect.any(String) }));
    for (const e of events) expect(e.message).not.toContain(first.token!);
    expect(await planeAnswers()).toBe(true);
  }
});

test('replayed and cross-host tokens are refused (403) and change nothing; the token owners get Warning Events', async () => {
  const a = await newHost('replay-a');
  const b = await newHost('replay-b');
  await activities.startAgentSession({ host: a.host, mac: a.mac, command: { id: 'a-1', type: 'inspect' } });
  const oldA = (await fetchScript(a.mac)).token!;
  expect((await call('POST', hostPath(a.host, 'reports'), oldA, inspectOk('a-1'))).status).toBe(204);
  // The workflow moves on: a new boot of A with a new token.
  await activities.startAgentSession({ host: a.host, mac: a.mac, command: { id: 'a-2', type: 'inspect' } });
  const newA = (await fetchScript(a.mac)).token!;
  await activities.startAgentSession({ host: b.host, mac: b.mac, command: { id: 'b-1', type: 'inspect' } });
  const tokB = (await fetchScript(b.mac)).token!;
  for (const t of [newA, tokB]) expect((await call('POST', '/v1/agent/lookup', t)).status).toBe(200); // both agents are running
  const before = await state(a, b);

  const forged = [
    // A's old boot, replayed: its final report again, and a report for A's new command.
    await call('POST', hostPath(a.host, 'reports'), oldA, inspectOk('a-1')),
    await call('POST', hostPath(a.host, 'reports'), oldA, inspectOk('a-2')),
    await call('GET', hostPath(a.host, 'command'), oldA),
    // B's token on A's paths, A's on B's.
    await call('POST', hostPath(a.host, 'reports'), tokB, inspectOk('a-2')),
    await call('GET', hostPath(a.host, 'user-data'), tokB),
    await call('POST', hostPath(b.host, 'reports'), newA, inspectOk('b-1')),
  ];
  expect(forged.map((f) => f.status)).toEqual([403, 403, 403, 403, 403, 403]);
  expect(await state(a, b)).toEqual(before);
  expect(await planeAnswers()).toBe(true);
  expect((await warningsOf(a)).map((e) => e.reason)).toEqual(expect.arrayContaining(['AgentTokenRefused', 'AgentTokenWrongHost']));
  expect((await warningsOf(b)).map((e) => e.reason)).toContain('AgentTokenWrongHost');
  // Only A's one real report ever reached A's workflow.
  expect((await signalsOf(a)).map((s) => s.report.commandId)).toEqual(['a-1']);
  expect(await signalsOf(b)).toEqual([]);
});

test('a result for a command never issued is refused (409) with the boot\'s own token, and changes nothing', async () => {
  const w = await newHost('never-issued');
  await activities.startAgentSession({ host: w.host, mac: w.mac, command: { id: 'inspect-1', type: 'inspect' } });
  const token = (await fetchScript(w.mac)).token!;
  expect((await call('POST', '/v1/agent/lookup', token)).status).toBe(200);
  const before = await state(w);
  const deployOk = { rootDevice: '/dev/vda', rootDeviceSerial: 'S', rootDeviceSizeBytes: 1, bytesWritten: 1, checksumType: 'sha256', checksum: 'a'.repeat(64), userDataWritten: false };
  const forged = [
    await call('POST', hostPath(w.host, 'reports'), token, { commandId: 'deploy-never-issued', type: 'deploy', status: 'ok', data: deployOk }),
    await call('POST', hostPath(w.host, 'reports'), token, { commandId: 'inspect-1', type: 'deploy', status: 'ok', data: deployOk }),
    await call('POST', hostPath(w.host, 'reports'), token, { ...inspectOk('inspect-0') }),
  ];
  expect(forged.map((f) => f.status)).toEqual([409, 409, 409]);
  for (const f of forged) expect(f.text).not.toContain('never-issued');
  expect(await state(w)).toEqual(before);
  expect((await warningsOf(w)).map((e) => e.reason)).toContain('AgentReportRefused');
  expect(await signalsOf(w)).toEqual([]);
  expect(await planeAnswers()).toBe(true);
});

// ---- forgeries with disks: the real agent on image files ------------------------------------------

const marker = Buffer.from('IRONFLOW-MARKER-OLD-IMAGE'.padEnd(64, '#'));
const server = (name: string, mac: string): LabServer => ({
  name, vendor: 'Lab', model: 'L1', cpus: 2, memoryMiB: 1024,
  disks: [{ name: 'vda', sizeGiB: 0.0625, serialNumber: `${name}-A` }, { name: 'vdb', sizeGiB: 0.03125, serialNumber: `${name}-B` }],
  nics: [{ name: 'eth0', mac }], bmc: { protocol: 'ipmi', username: 'u', password: 'p' },
});
const inspected = (s: LabServer): ExpectedDisk[] => s.disks.map((d) => ({ name: d.name, serialNumber: d.serialNumber, sizeBytes: labDiskBytes(d.sizeGiB) }));
const diskHashes = async (paths: Record<string, string>) =>
  Object.fromEntries(await Promise.all(Object.entries(paths).map(async ([k, p]) => [k, createHash('sha256').update(await readFile(p)).digest('hex')])));

test('an erase report with the wrong disk serial is refused (422, Warning Event): the old data stays, history unchanged, and the real agent\'s erase is then accepted', async () => {
  const w = await newHost('erase-forged');
  const srv = server(w.host.name, w.mac);
  const sysroot = await createSysroot(srv, { dir: join(dir, w.host.name), apiUrl: plane.httpUrl, bootId: 'x' });
  for (const p of Object.values(sysroot.diskPaths)) {
    const fh = await open(p, 'r+');
    await fh.write(marker, 0, marker.length, 4096);
    await fh.close();
  }
  await activities.startAgentSession({ host: w.host, mac: w.mac, command: { id: 'erase-1', type: 'erase', mode: 'full' }, inspectedDisks: inspected(srv) });
  const script = await fetchScript(w.mac);
  // The forger has the token (the worst case) and sees the command, regions included.
  const command = JSON.parse((await call('GET', hostPath(w.host, 'command'), script.token)).text) as { command: { verify: Record<string, { regions: { length: number }[] }> } };
  const zeros = (disk: string) => createHash('sha256').update(Buffer.alloc(command.command.verify[disk]!.regions.reduce((s, r) => s + r.length, 0))).digest('hex');
  const disksBefore = await diskHashes(sysroot.diskPaths);
  const before = await state(w);

  const forged = await call('POST', hostPath(w.host, 'reports'), script.token, {
    commandId: 'erase-1', type: 'erase', status: 'ok',
    data: { mode: 'full', disks: srv.disks.map((d) => ({ disk: d.name, serialNumber: 'FORGED', method: 'overwrite', result: 'ok', verified: true, sizeBytes: labDiskBytes(d.sizeGiB), sampleSha256: zeros(d.name), finishedAt: new Date().toISOString() })) },
  });
  expect(forged.status).toBe(422);
  expect(forged.text).toContain('the disk serial does not match inspection');
  expect(forged.text).not.toContain('FORGED');
  const after = await state(w);
  // The session's state is untouched; only the count of refused evidence went up (3 strikes end the boot).
  const sessionOf = (s: typeof before) => s.store.hosts[`${w.host.namespace}/${w.host.name}`]!.session!;
  expect({ ...sessionOf(after), evidenceMismatches: 0 }).toEqual({ ...sessionOf(before), evidenceMismatches: 0 });
  expect(sessionOf(after).evidenceMismatches).toBe(1);
  expect(after.histories).toEqual(before.histories);
  expect(await diskHashes(sysroot.diskPaths)).toEqual(disksBefore);
  const events = await warningsOf(w);
  expect(events).toContainEqual(expect.objectContaining({ reason: 'AgentEvidenceMismatch', message: expect.stringContaining(`serial ${w.host.name}-A`) }));
  expect(await planeAnswers()).toBe(true);

  // The real agent of that boot (the old plane answered it 409 for good): its erase is accepted, and the disks are zeros.
  await writeFile(join(sysroot.dir, 'proc/cmdline'), `${script.cmdline}\n`);
  const ac = new AbortController();
  const watch = setInterval(() => { if (plane.sessions.currentSession(w.host)?.state === 'finished') ac.abort(); }, 50);
  await runAgent({ sysroot: sysroot.dir, signal: ac.signal, timeoutMs: 60_000 }).finally(() => clearInterval(watch));
  await plane.relay.idle();
  expect((await signalsOf(w)).filter((s) => s.report.status !== 'progress').map((s) => [s.report.commandId, s.report.status])).toEqual([['erase-1', 'ok']]);
  for (const p of Object.values(sysroot.diskPaths)) expect((await readFile(p)).subarray(4096, 4096 + marker.length).equals(Buffer.alloc(marker.length))).toBe(true);
}, 90_000);

test('a deploy report for a disk that stayed all zeros is refused (422): the checksum alone does not make a host provisioned', async () => {
  const w = await newHost('deploy-forged');
  const srv = server(w.host.name, w.mac);
  const image = randomBytes(2 * 1024 * 1024);
  await writeFile(join(plane.filesDir, `${w.host.name}.img`), image);
  const checksum = createHash('sha256').update(image).digest('hex');
  await activities.startAgentSession({
    host: w.host, mac: w.mac, inspectedDisks: inspected(srv),
    command: { id: 'deploy-1', type: 'deploy', imageUrl: `${plane.httpUrl}/files/${w.host.name}.img`, checksum, checksumType: 'sha256', hasUserData: false },
  });
  const token = (await fetchScript(w.mac)).token!;
  const command = JSON.parse((await call('GET', hostPath(w.host, 'command'), token)).text) as { command: { verify: { regions: { length: number }[] } } };
  const before = await state(w);
  const zeros = createHash('sha256').update(Buffer.alloc(command.command.verify.regions.reduce((s, r) => s + r.length, 0))).digest('hex');
  const forged = await call('POST', hostPath(w.host, 'reports'), token, {
    commandId: 'deploy-1', type: 'deploy', status: 'ok',
    data: { rootDevice: '/dev/vdb', rootDeviceSerial: `${w.host.name}-B`, rootDeviceSizeBytes: labDiskBytes(0.03125), sampleSha256: zeros, bytesWritten: image.length, checksumType: 'sha256', checksum, userDataWritten: false },
  });
  expect(forged.status).toBe(422);
  expect(forged.text).toContain('verify regions read back from the root device');
  const noEvidence = await call('POST', hostPath(w.host, 'reports'), token, {
    commandId: 'deploy-1', type: 'deploy', status: 'ok',
    data: { rootDevice: '/dev/vdb', bytesWritten: image.length, checksumType: 'sha256', checksum, userDataWritten: false },
  });
  expect(noEvidence.status).toBe(422);
  const after = await state(w);
  expect(after.histories).toEqual(before.histories);
  expect(after.store.hosts[`${w.host.namespace}/${w.host.name}`]!.session!.state).toBe('running');
  expect((await warningsOf(w)).filter((e) => e.reason === 'AgentEvidenceMismatch')).toHaveLength(2);
  expect(await signalsOf(w)).toEqual([]);
});

test('a 10,000-report flood in 10 s with a valid token: bounded signals and history, the plane answers throughout, the real report still goes through', async () => {
  const w = await newHost('flood');
  await activities.startAgentSession({ host: w.host, mac: w.mac, command: { id: 'inspect-flood', type: 'inspect' } });
  const token = (await fetchScript(w.mac)).token!;
  expect((await call('POST', '/v1/agent/lookup', token)).status).toBe(200);
  const historyBefore = await settledHistory(w);
  const heapBefore = process.memoryUsage().heapUsed;

  const pool = new Pool(plane.httpUrl, { connections: 32 });
  const statuses = new Map<number, number>();
  const latencies: number[] = [];
  let sent = 0;
  const started = Date.now();
  const body = (i: number) => JSON.stringify({ commandId: 'inspect-flood', type: 'inspect', status: 'progress', message: `flood ${i}`, percent: i % 100 });
  let probing = true;
  const probe = (async () => {
    while (probing) {
      const t0 = Date.now();
      expect(await planeAnswers()).toBe(true);
      latencies.push(Date.now() - t0);
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  try {
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (sent < 10_000 && Date.now() - started < 10_000) {
        const i = ++sent;
        const res = await pool.request({ path: hostPath(w.host, 'reports'), method: 'POST', headers: { [AGENT_TOKEN_HEADER]: token, 'content-type': 'application/json' }, body: body(i) });
        await res.body.dump();
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
      }
    }));
  } finally {
    probing = false;
    await probe;
    await pool.close();
  }
  const floodMs = Date.now() - started;
  // Coalesced: at most one progress signal now and one per 10 s after; wait out the interval, then count.
  await new Promise((r) => setTimeout(r, 10_500));
  await plane.relay.idle();
  const progress = (await signalsOf(w)).filter((s) => s.report.status === 'progress');
  const historyAfter = await settledHistory(w);
  console.log(`agent report flood: ${sent} reports in ${floodMs} ms (${JSON.stringify(Object.fromEntries(statuses))}); progress signals ${progress.length}; history ${historyBefore} -> ${historyAfter} events; heap +${Math.round((process.memoryUsage().heapUsed - heapBefore) / 1048576)} MiB; plane probe max ${Math.max(...latencies)} ms`);
  expect(sent).toBeGreaterThanOrEqual(1000);
  expect(statuses.get(429) ?? 0).toBeGreaterThan(0);
  expect((statuses.get(204) ?? 0) + (statuses.get(429) ?? 0)).toBe(sent);
  expect(progress.length).toBeGreaterThanOrEqual(1);
  expect(progress.length).toBeLessThanOrEqual(3);
  expect(historyAfter - historyBefore).toBeLessThanOrEqual(3 * 4);
  expect(Math.max(...latencies)).toBeLessThan(2_000);
  expect(await activities.getAgentSession({ host: w.host, commandId: 'inspect-flood' })).toMatchObject({ state: 'running', progress: { message: expect.stringMatching(/^flood \d+$/) } });
  // The token's bucket refills: the agent's real report is accepted and delivered once.
  await new Promise((r) => setTimeout(r, 1_000));
  expect((await call('POST', hostPath(w.host, 'reports'), token, inspectOk('inspect-flood'))).status).toBe(204);
  await plane.relay.idle();
  expect((await signalsOf(w)).filter((s) => s.report.status === 'ok')).toHaveLength(1);
}, 60_000);
