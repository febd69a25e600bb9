/**
 * The agent API on the real provisioning HTTP server (workers/provisioning.ts)
 * on loopback, driven with a real HTTP client the way an agent is: its token
 * comes from the kernel line of the once-served boot script. What it proves:
 * the protocol (lookup, command, reports, user data), the bounds (bodies,
 * fields, rate), that nothing a client sends comes back, progress coalescing
 * and the durable outbox. The forgeries of issue 13 are in
 * agent-forgery.test.ts.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_TOKEN_HEADER, type AgentCommand, type AgentReportSignal } from '../../api/agent';
import type { HostRef } from '../../api/host';
import { startAgentLab, type AgentLab } from '../helpers/agent-lab';

let lab: AgentLab;
let dir: string;
let n = 0;
let forwardFails = false;
const forwarded: { host: HostRef; signal: AgentReportSignal }[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'agent-api-'));
  lab = await startAgentLab({
    dir,
    tuning: {
      // Progress: at most one signal per session per second here (production: 10 s).
      relay: { progressIntervalMs: 1000, retryFirstMs: 100, retryMaxMs: 200 },
      forward: async (host, signal) => {
        if (forwardFails) throw new Error('14 UNAVAILABLE: Temporal is away');
        forwarded.push({ host, signal });
      },
      api: { burst: 20, perSecond: 10 },
    },
  });
});
afterAll(async () => {
  await lab.close();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => {
  forwarded.length = 0;
  forwardFails = false;
});

const call = async (method: string, path: string, token?: string, body?: unknown, raw?: string) => {
  const res = await fetch(`${lab.apiUrl}${path}`, {
    method,
    headers: { ...(token !== undefined ? { [AGENT_TOKEN_HEADER]: token } : {}), ...(body !== undefined || raw !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: raw ?? (body !== undefined ? JSON.stringify(body) : undefined),
  });
  const text = await res.text();
  return { status: res.status, text, headers: res.headers, json: text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : undefined };
};
const hostPath = (h: HostRef, what: string) => `/v1/agent/hosts/${h.namespace}/${h.name}/${what}`;

/** A session started and its script fetched as firmware would: the host, its boot and the token from the kernel line. */
async function boot(command: { type: AgentCommand['type']; id?: string } & Record<string, unknown>, extra: { userData?: { name: string }; inspectedDisks?: { name: string; serialNumber: string; sizeBytes: number }[] } = {}) {
  const i = ++n;
  const host = { namespace: 'lab', name: `api-${i}` };
  const mac = `52:54:00:a1:00:${i.toString(16).padStart(2, '0')}`;
  const cmd = { ...command, id: command.id ?? `cmd-${i}` } as AgentCommand;
  const { bootId } = await lab.activities.startAgentSession({ host, mac, command: cmd, ...extra });
  const script = await lab.fetchBootScript(mac);
  const token = /ironflow\.token=(\S+)/.exec(script.cmdline ?? '')?.[1];
  if (!token) throw new Error(`no token in ${script.body}`);
  return { host, mac, bootId, token, command: cmd };
}
const inspectOk = (commandId: string) => ({
  commandId, type: 'inspect', status: 'ok',
  data: { cpu: { arch: 'x86_64', model: 'm', count: 2 }, memoryMiB: 1024, disks: [], nics: [{ name: 'eth0', mac: '52:54:00:00:00:0a' }], system: {} },
});
const until = async (pred: () => boolean, ms = 5000) => {
  for (const end = Date.now() + ms; !pred() && Date.now() < end;) await new Promise((r) => setTimeout(r, 20));
};

test('lookup tells the agent who it is, from its token alone, and never returns a token', async () => {
  const b = await boot({ type: 'inspect' });
  const ok = await call('POST', '/v1/agent/lookup', b.token, { bootId: b.bootId });
  expect(ok.status).toBe(200);
  expect(ok.json).toEqual({ namespace: 'lab', name: b.host.name, bootId: b.bootId, pollIntervalSeconds: 0.2 });
  expect(ok.text).not.toContain(b.token);
  expect(ok.headers.get('cache-control')).toBe('no-store');
  // Another boot id on the command line than the token's: refused.
  expect((await call('POST', '/v1/agent/lookup', b.token, { bootId: 'someone-elses-boot' })).status).toBe(403);
  // The old protocol (MACs, no token) gets nothing.
  const old = await call('POST', '/v1/agent/lookup', undefined, { macs: [b.mac] });
  expect(old.status).toBe(401);
  expect(old.text).not.toMatch(/token"\s*:/);
  expect(lab.sessions.currentSession(b.host)?.state).toBe('running');
});

test('command: the issued command (with the plane\'s evidence regions) until its final report, then none', async () => {
  const disks = [{ name: 'vda', serialNumber: 'S-1', sizeBytes: 64 * 1024 * 1024 }];
  const b = await boot({ type: 'erase', mode: 'metadata' }, { inspectedDisks: disks });
  const got = await call('GET', hostPath(b.host, 'command'), b.token);
  expect(got.json).toEqual({ command: { id: b.command.id, type: 'erase', mode: 'metadata', disks, verify: { vda: { regions: expect.any(Array) } } } });
  const regions = (got.json as { command: { verify: { vda: { regions: { offset: number; length: number }[] } } } }).command.verify.vda.regions;
  // metadata: only inside the first and last MiB, which that mode wipes.
  for (const r of regions) expect(r.offset + r.length <= 1024 * 1024 || r.offset >= 63 * 1024 * 1024).toBe(true);
  expect((await call('POST', hostPath(b.host, 'reports'), b.token, { commandId: b.command.id, type: 'erase', status: 'failed', message: 'disk gone' })).status).toBe(204);
  expect((await call('GET', hostPath(b.host, 'command'), b.token)).json).toEqual({ command: { id: 'none', type: 'none' } });
});

test('user data is read from its Secret only while the deploy runs, only with the token, and not after its final report', async () => {
  lab.userDataSecrets.set('lab/ud-api', Buffer.from('#cloud-config\nsecret: 42\n'));
  const imageUrl = `${lab.apiUrl}/files/ud.img`;
  await writeFile(join(lab.filesDir, 'ud.img'), Buffer.alloc(4096, 7));
  const b = await boot({ type: 'deploy', imageUrl, checksum: 'a'.repeat(64), checksumType: 'sha256', hasUserData: true }, { userData: { name: 'ud-api' } });
  expect((await call('GET', hostPath(b.host, 'user-data'))).status).toBe(401);
  const ud = await call('GET', hostPath(b.host, 'user-data'), b.token);
  expect([ud.status, ud.text]).toEqual([200, '#cloud-config\nsecret: 42\n']);
  // The store's file holds the Secret's name, never its bytes.
  await lab.sessions.flush();
  const file = await readFile(join(dir, 'state', 'sessions.json'), 'utf8');
  expect(file).toContain('"name":"ud-api"');
  expect(file).not.toContain('secret: 42');
  await call('POST', hostPath(b.host, 'reports'), b.token, { commandId: b.command.id, type: 'deploy', status: 'failed', message: 'checksum mismatch' });
  expect((await call('GET', hostPath(b.host, 'user-data'), b.token)).status).toBe(404);
});

test('user data from another namespace is refused with both namespaces named, and the Secret is never read', async () => {
  let reads = 0;
  const spy = lab.userDataSecrets.get.bind(lab.userDataSecrets);
  lab.userDataSecrets.get = (k: string) => { reads++; return spy(k); };
  try {
    const err = await lab.activities.startAgentSession({
      host: { namespace: 'tenant-a', name: 'h1' }, mac: '52:54:00:a1:ff:01',
      command: { id: 'd-x', type: 'deploy', imageUrl: `${lab.apiUrl}/files/ud.img`, checksum: 'a'.repeat(64), checksumType: 'sha256', hasUserData: true },
      userData: { name: 'their-secret', namespace: 'tenant-b' },
    }).catch((e: unknown) => e as { type: string; nonRetryable: boolean; message: string });
    expect(err).toMatchObject({ type: 'UserDataMissing', nonRetryable: true });
    expect((err as { message: string }).message).toMatch(/namespace "tenant-b".*own namespace "tenant-a"/);
    expect(reads).toBe(0);
  } finally {
    lab.userDataSecrets.get = spy;
  }
});

test('reports: invalid ones are 400 naming the field, never repeating what the client sent', async () => {
  const b = await boot({ type: 'inspect' });
  const bad = inspectOk(b.command.id) as { data: Record<string, unknown> };
  delete bad.data.memoryMiB;
  const r = await call('POST', hostPath(b.host, 'reports'), b.token, bad);
  expect([r.status, r.json?.error]).toEqual([400, 'report field /data/memoryMiB: must have required property \'memoryMiB\'']);
  const extra = await call('POST', hostPath(b.host, 'reports'), b.token, { ...inspectOk(b.command.id), EVIL_FIELD_NAME: 1 });
  expect(extra.status).toBe(400);
  expect(extra.text).not.toContain('EVIL_FIELD_NAME');
  const long = await call('POST', hostPath(b.host, 'reports'), b.token, { commandId: b.command.id, type: 'inspect', status: 'progress', message: 'Z'.repeat(600) });
  expect(long.status).toBe(400);
  expect(long.text).not.toContain('ZZZZ');
  const json = await call('POST', hostPath(b.host, 'reports'), b.token, undefined, '{"commandId": "XYZZY-not-json');
  expect(json.status).toBe(400);
  expect(json.text).not.toContain('XYZZY');
  expect(forwarded).toEqual([]);
});

test('bodies are bounded per route: 413 before anything is parsed, and the answer does not repeat the body', async () => {
  const b = await boot({ type: 'inspect' });
  const huge = await call('POST', hostPath(b.host, 'reports'), b.token, undefined, JSON.stringify({ commandId: b.command.id, pad: 'Q'.repeat(300 * 1024) }));
  expect(huge.status).toBe(413);
  expect(huge.text).not.toContain('QQQQ');
  expect((await call('POST', '/v1/agent/lookup', b.token, undefined, JSON.stringify({ pad: 'Q'.repeat(2048) }))).status).toBe(413);
  // Still serving the agent.
  expect((await call('GET', hostPath(b.host, 'command'), b.token)).status).toBe(200);
});

test('a valid final report is forwarded once; the agent\'s retry of it is 204 and not forwarded again', async () => {
  const b = await boot({ type: 'inspect' });
  expect((await call('POST', hostPath(b.host, 'reports'), b.token, inspectOk(b.command.id))).status).toBe(204);
  await lab.plane.relay.idle();
  expect((await call('POST', hostPath(b.host, 'reports'), b.token, inspectOk(b.command.id))).status).toBe(204);
  await lab.plane.relay.idle();
  expect(forwarded.filter((f) => f.signal.report.status === 'ok')).toEqual([{ host: b.host, signal: { bootId: b.bootId, report: inspectOk(b.command.id), receivedAt: expect.any(String) } }]);
});

test('per-token rate limit: past the burst 429 with Retry-After; after a pause the token works again', async () => {
  const b = await boot({ type: 'inspect' });
  const statuses: number[] = [];
  let retryAfter: string | null = null;
  for (let i = 0; i < 40; i++) {
    const r = await call('GET', hostPath(b.host, 'command'), b.token);
    statuses.push(r.status);
    if (r.status === 429) retryAfter ??= r.headers.get('retry-after');
  }
  expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(20);
  expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
  expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
  await new Promise((r) => setTimeout(r, 1100));
  expect((await call('GET', hostPath(b.host, 'command'), b.token)).status).toBe(200);
});

test('progress is coalesced: 18 reports in a burst make at most 2 signals, the last carrying the latest message', async () => {
  const b = await boot({ type: 'inspect' });
  for (let i = 1; i <= 18; i++) {
    expect((await call('POST', hostPath(b.host, 'reports'), b.token, { commandId: b.command.id, type: 'inspect', status: 'progress', message: `step ${i}`, percent: i })).status).toBe(204);
  }
  await new Promise((r) => setTimeout(r, 1300));
  await lab.plane.relay.idle();
  const progress = forwarded.filter((f) => f.host.name === b.host.name && f.signal.report.status === 'progress');
  expect(progress.length).toBeGreaterThanOrEqual(1);
  expect(progress.length).toBeLessThanOrEqual(2);
  expect(progress[progress.length - 1]!.signal.report).toMatchObject({ message: 'step 18', percent: 18 });
  expect(await lab.activities.getAgentSession({ host: b.host, commandId: b.command.id })).toMatchObject({ state: 'running', progress: { message: 'step 18', percent: 18 } });
});

test('outbox: with Temporal away the final report is still accepted (204) and kept; it is delivered once, unchanged, when Temporal returns', async () => {
  const b = await boot({ type: 'inspect' });
  forwardFails = true;
  expect((await call('POST', hostPath(b.host, 'reports'), b.token, inspectOk(b.command.id))).status).toBe(204);
  expect(await lab.activities.getAgentSession({ host: b.host, commandId: b.command.id })).toMatchObject({ state: 'finished', report: { status: 'ok' } });
  await until(() => (lab.sessions.pendingDeliveries().find((d) => d.bootId === b.bootId)?.attempts ?? 0) >= 2);
  const pending = lab.sessions.pendingDeliveries().find((d) => d.bootId === b.bootId)!;
  expect(pending.attempts).toBeGreaterThanOrEqual(2);
  const mine = () => forwarded.filter((f) => f.host.name === b.host.name);
  expect(mine()).toEqual([]);
  forwardFails = false;
  await until(() => mine().length > 0);
  await lab.plane.relay.idle();
  expect(mine()).toEqual([{ host: b.host, signal: pending.signal }]);
  expect(lab.sessions.pendingDeliveries().find((d) => d.bootId === b.bootId)).toBeUndefined();
});
