/**
 * The payload codec at the edge, with the real host workflow on the real
 * Temporal server and the official `temporal` CLI (.venv/bin/temporal):
 * - the CLI decrypts a host's status through the codec server with its
 *   token, and encrypts a signal that then steers the host;
 * - a signal sent in plaintext by a client without the codec is refused by
 *   the worker: the workflow task fails with a message saying why, the host
 *   is not steered, and an operator's reset drops it;
 * - the codec server's own contract: token (header or login cookie), `{}`
 *   for no payloads, CORS for the Web UI, loopback Host names only.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Client, type WorkflowHandle } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { HOST_MESSAGES, type HostStatus } from '../../api/host';
import { workflowIdFor } from '../../api/names';
import { AesGcmPayloadCodec } from '../../workers/codec/aes-gcm-codec';
import { CODEC_COOKIE, startCodecServer } from '../../workers/codec/codec-server';
import { loadCodecToken } from '../../workers/codec/codec-token';
import { loadToolPaths } from '../../workers/embedded/tools';
import { sharedEnv, temporalTestContext, uniqueSuffix, type TemporalTestContext } from '../helpers/env';
import { createFakeWorld, type FakeWorld } from '../helpers/fake-host-activities';
import { observation, sharedBundle } from '../helpers/host-workflow-harness';
import { shareCodecKeyWithScan } from '../helpers/secret-scan';
import { registerTestSecret } from '../helpers/secrets';

const run = promisify(execFile);
const TOKEN = `codec-edge-${randomBytes(12).toString('hex')}`;
const UI_ORIGIN = 'http://127.0.0.1:8233';

type Status = HostStatus & { waitingFor?: string };

describe('the Temporal edge: encrypted payloads, the codec server and the temporal CLI', () => {
  let ctx: TemporalTestContext;
  let codecClient: Client;
  let server: Awaited<ReturnType<typeof startCodecServer>>;
  let worker: Worker;
  let running: Promise<void>;
  let world: FakeWorld;
  let handle: WorkflowHandle;
  const env = sharedEnv();
  const ref = { namespace: 'lab', name: `edge-${uniqueSuffix()}` };
  const workflowId = workflowIdFor('BareMetalHost', ref.namespace, ref.name);
  const codecKey = { id: `edge-${uniqueSuffix()}`, key: randomBytes(32) };
  const codec = new AesGcmPayloadCodec([codecKey]);

  /** The official CLI against the shared test server; resolves with stdout+stderr and the exit code. */
  const temporal = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await run(loadToolPaths().temporal, [...args, '--address', env.temporalAddress, '--namespace', env.temporalNamespace], { timeout: 30_000 });
      return { code: 0, out: `${stdout}${stderr}` };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: e.code ?? 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
    }
  };
  const withCodec = (auth = `Bearer ${TOKEN}`) => ['--codec-endpoint', server.url, ...(auth ? ['--codec-auth', auth] : [])];
  const status = () => codecClient.workflow.getHandle(workflowId).query<Status>(HOST_MESSAGES.status);
  const waitFor = async (pred: (s: Status) => boolean, what: string, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    let last: Status | undefined;
    while (Date.now() < deadline) {
      last = await status().catch(() => last);
      if (last && pred(last)) return last;
      await sleep(100);
    }
    throw new Error(`timed out waiting for ${what}; last status: ${JSON.stringify(last)}`);
  };

  beforeAll(async () => {
    registerTestSecret(TOKEN);
    shareCodecKeyWithScan(codecKey);
    ctx = await temporalTestContext('codec-edge');
    codecClient = new Client({ connection: ctx.client.connection, namespace: ctx.namespace, dataConverter: { payloadCodecs: [codec] } });
    server = await startCodecServer({ codec: codec.showingPlaintext(), token: TOKEN, allowOrigins: [UI_ORIGIN] });
    // The fake agent reports through the codec client, as the plane's agent API does.
    world = createFakeWorld(() => codecClient, ref);
    worker = await Worker.create({
      connection: ctx.nativeConnection,
      namespace: ctx.namespace,
      taskQueue: ctx.taskQueue,
      workflowBundle: await sharedBundle(),
      activities: world.activities,
      dataConverter: { payloadCodecs: [codec] },
    });
    running = worker.run();
    const first = observation();
    handle = await codecClient.workflow.signalWithStart('hostLifecycle', {
      workflowId,
      taskQueue: ctx.taskQueue,
      args: [{ ref, observation: first }],
      signal: HOST_MESSAGES.observed,
      signalArgs: [first],
    });
    await waitFor((s) => s.provisioning.state === 'available', 'available');
  }, 90_000);

  afterAll(async () => {
    await handle?.terminate('test done').catch(() => undefined);
    worker?.shutdown();
    await running;
    await server?.stop();
    await ctx?.close();
  });

  it('`temporal workflow query --codec-endpoint --codec-auth` prints the decrypted host status; without the token or the codec it does not', async () => {
    const ok = await temporal('workflow', 'query', '-w', workflowId, '--name', HOST_MESSAGES.status, ...withCodec());
    expect(ok.code).toBe(0);
    expect(ok.out).toContain('"provisioning":{"state":"available"}');

    const noToken = await temporal('workflow', 'query', '-w', workflowId, '--name', HOST_MESSAGES.status, ...withCodec(''));
    expect(noToken.out).not.toContain('"state":"available"');
    expect(noToken.out).toMatch(/401|Unauthorized|codec/i);
    console.log(`temporal workflow query with the codec endpoint but no --codec-auth: exit ${noToken.code}, ${noToken.out.trim().split('\n').pop()}`);

    const noCodec = await temporal('workflow', 'query', '-w', workflowId, '--name', HOST_MESSAGES.status);
    expect(noCodec.out).not.toContain('available');
    // The CLI prints the raw payload: metadata base64, `binary/encrypted`.
    expect(noCodec.out).toContain(Buffer.from('binary/encrypted').toString('base64'));
  }, 60_000);

  it('a signal the CLI sends through the codec (encrypted) steers the host', async () => {
    const obs = observation({ online: true });
    const sent = await temporal('workflow', 'signal', '-w', workflowId, '--name', HOST_MESSAGES.observed, '--input', JSON.stringify(obs), ...withCodec());
    expect(sent).toMatchObject({ code: 0 });
    await waitFor((s) => s.poweredOn === true, 'powered on by the encrypted signal');
    expect(world.poweredOn).toBe(true);
  }, 60_000);

  it('a plaintext signal is refused by the worker: the workflow task fails saying why, the host is not steered, and a reset drops it', async () => {
    // Powered on by an encrypted signal first (as in the test above), so a power-off would show.
    await codecClient.workflow.getHandle(workflowId).signal(HOST_MESSAGES.observed, observation({ online: true }));
    await waitFor((s) => s.poweredOn === true, 'powered on');
    const callsBefore = world.calls.length;
    // online: false would power the host off, if the worker accepted it.
    await ctx.client.workflow.getHandle(workflowId).signal(HOST_MESSAGES.observed, observation({ online: false }));

    let failure: string | undefined;
    for (let i = 0; i < 100 && !failure; i++) {
      const events = (await ctx.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
      failure = events.find((e) => e.workflowTaskFailedEventAttributes)?.workflowTaskFailedEventAttributes?.failure?.message ?? undefined;
      if (!failure) await sleep(100);
    }
    expect(failure).toContain('refused a payload that is not encrypted (encoding "json/plain")');
    expect(failure).toContain('--codec-endpoint');
    const described = await ctx.client.workflow.getHandle(workflowId).describe();
    expect(described.status.name).toBe('RUNNING');
    // While the task keeps failing, queries get no answer (the worker cannot build the workflow's state past the signal).
    const queried = await codecClient.connection.withDeadline(Date.now() + 3_000, () => status().then((s) => s.provisioning.state, (e: Error) => e.message));
    console.log(`after the plaintext signal: pending workflow task attempt ${described.raw.pendingWorkflowTask?.attempt}; a status query (3 s deadline) answers "${queried}"`);

    await sleep(1_000);
    expect(world.poweredOn).toBe(true);
    expect(world.calls.slice(callsBefore).filter((c) => c.startsWith('bmc'))).toEqual([]);

    // The way out: reset to the last completed workflow task without re-applying signals.
    const resetAt = Date.now();
    const reset = await temporal('workflow', 'reset', '-w', workflowId, '--type', 'LastWorkflowTask', '--reapply-exclude', 'Signal', '--reason', 'drop a plaintext signal');
    expect(reset).toMatchObject({ code: 0 });
    const after = await waitFor((s) => s.provisioning.state === 'available' && s.poweredOn === true, 'available after the reset');
    console.log(`reset to the last completed workflow task: host answers again after ${Date.now() - resetAt} ms`);
    expect(after.poweredOn).toBe(true);
    expect(world.poweredOn).toBe(true);
  }, 90_000);

  describe('the codec server contract', () => {
    const post = (path: string, body: string, headers: Record<string, string> = {}) =>
      fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

    it('answers only with the token: none or a wrong one is 401 with a message saying what to send', async () => {
      const none = await post('/decode', '{"payloads":[]}');
      expect(none.status).toBe(401);
      expect(((await none.json()) as { message: string }).message).toContain('Authorization: Bearer <token>');
      expect((await post('/decode', '{}', { authorization: 'Bearer wrong-token-0000000000' })).status).toBe(401);
      expect((await post('/decode', '{}', { authorization: TOKEN })).status).toBe(401);
    });

    it('takes {} (no payloads, as the temporal CLI sends it) and answers {"payloads": []}; takes a path prefix', async () => {
      for (const path of ['/decode', '/encode', '/default/decode']) {
        const res = await post(path, '{}', { authorization: `Bearer ${TOKEN}` });
        expect({ path, status: res.status, body: await res.json() }).toEqual({ path, status: 200, body: { payloads: [] } });
      }
      const bad = await post('/decode', '{"payloads": 3}', { authorization: `Bearer ${TOKEN}` });
      expect(bad.status).toBe(400);
    });

    it('lets a browser sign in once: the login form sets an HttpOnly, SameSite cookie that then decodes', async () => {
      expect((await fetch(`${server.url}/login`)).headers.get('content-type')).toContain('text/html');
      const wrong = await fetch(`${server.url}/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'token=nope' });
      expect(wrong.status).toBe(401);
      expect(wrong.headers.get('set-cookie')).toBeNull();
      const right = await fetch(`${server.url}/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: TOKEN }).toString() });
      expect(right.status).toBe(200);
      const cookie = right.headers.get('set-cookie')!;
      expect(cookie).toMatch(new RegExp(`^${CODEC_COOKIE}=[^;]+; HttpOnly; SameSite=Strict; Path=/`));
      const [sealed] = await codec.encode([{ metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from('"hello"') }]);
      const res = await post('/decode', JSON.stringify({ payloads: [{ metadata: Object.fromEntries(Object.entries(sealed!.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')])), data: Buffer.from(sealed!.data!).toString('base64') }] }), {
        cookie: cookie.split(';')[0]!,
        origin: UI_ORIGIN,
        'x-namespace': 'default',
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('access-control-allow-origin')).toBe(UI_ORIGIN);
      expect(res.headers.get('access-control-allow-credentials')).toBe('true');
      expect(Buffer.from(((await res.json()) as { payloads: Array<{ data: string }> }).payloads[0]!.data, 'base64').toString()).toBe('"hello"');
    });

    it("answers the Web UI's preflight (content-type, x-namespace, credentials) from its origin only", async () => {
      const pre = (origin: string) =>
        fetch(`${server.url}/decode`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-namespace' } });
      const ui = await pre(UI_ORIGIN);
      expect(ui.status).toBe(204);
      expect(ui.headers.get('access-control-allow-origin')).toBe(UI_ORIGIN);
      expect(ui.headers.get('access-control-allow-headers')).toContain('x-namespace');
      expect((await pre('http://evil.example')).headers.get('access-control-allow-origin')).toBeNull();
    });

    it('refuses a Host that is not a loopback name (a page reaching it through DNS rebinding)', async () => {
      const port = Number(new URL(server.url).port);
      const statusFor = (host: string) =>
        new Promise<number>((resolve, reject) => {
          const req = httpRequest({ host: '127.0.0.1', port, path: '/decode', method: 'POST', headers: { host, authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' } }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          });
          req.once('error', reject);
          req.end('{}');
        });
      expect(await statusFor('rebind.evil.example:80')).toBe(421);
      expect(await statusFor(`localhost:${port}`)).toBe(200);
    });
  });

  describe('the codec token', () => {
    let dir: string;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'codec-token-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('is generated once into a 0600 file and read back on the next start; a configured one wins', () => {
      const file = join(dir, 'state', 'codec-token');
      const first = loadCodecToken(undefined, file);
      expect(first.source).toBe('generated');
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(readFileSync(file, 'utf8').trim()).toBe(first.token);
      expect(loadCodecToken(undefined, file)).toEqual({ token: first.token, source: 'file' });
      expect(loadCodecToken('configured-token-0123456789', file)).toEqual({ token: 'configured-token-0123456789', source: 'configured' });
    });

    it('tightens a token file others can read, and refuses a short configured token', () => {
      const file = join(dir, 'codec-token');
      writeFileSync(file, 'a-token-from-an-older-plane-123\n');
      chmodSync(file, 0o644);
      loadCodecToken(undefined, file);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(() => loadCodecToken('short', file)).toThrow(/at least 16 characters/);
    });
  });
});
