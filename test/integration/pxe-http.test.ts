import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { request } from 'undici';
import { AGENT_BOOT_FILES, PXE_PATHS } from '../../api/pxe';
import { createPxeActivities } from '../../activities/pxe/activities';
import { SessionStore } from '../../activities/agent/session-store';
import { buildHttpBootApp, start, type HttpBootServer } from '../../activities/pxe/http-boot';

/** A raw GET whose path nobody normalises (undici and curl would fold `..`). */
function rawGet(port: number, rawPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: rawPath }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

describe('Ironflow PXE HTTP server (fastify) with a real HTTP client', () => {
  let dir: string;
  let server: HttpBootServer;
  let sessions: SessionStore;
  const logLines: Record<string, unknown>[] = [];
  const kernel = randomBytes(1024 * 1024 + 17);
  const host = { namespace: 'metal3', name: 'server-01' };
  const mac = '52:54:00:aa:bb:01';

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ironflow-http-'));
    const files = path.join(dir, 'files');
    mkdirSync(files);
    writeFileSync(path.join(files, AGENT_BOOT_FILES.kernel), kernel);
    writeFileSync(path.join(dir, 'secret.txt'), 'outside\n');
    symlinkSync(path.join(dir, 'secret.txt'), path.join(files, 'escape.txt'));
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        for (const l of chunk.toString().split('\n').filter(Boolean)) logLines.push(JSON.parse(l));
        cb();
      },
    });
    const log = pino({ level: 'info' }, sink);
    sessions = await SessionStore.open({ file: path.join(dir, 'state', 'sessions.json'), newBootId: () => 'boot-1' });
    server = await start({ host: '127.0.0.1', port: 0, filesDir: files, sessions, log, publicUrl: 'http://10.99.0.1:8080' });
    await sessions.startSession(host, mac, { command: { id: 'c1', type: 'inspect' }, expected: {}, kernelArgs: ['ironflow.debug=1'] });
  });
  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the chain script that iPXE expands per MAC', async () => {
    const res = await request(server.url + PXE_PATHS.chainScript);
    expect(res.statusCode).toBe(200);
    const body = await res.body.text();
    expect(body).toContain('chain --autofree http://10.99.0.1:8080/boot/${mac:hexhyp}.ipxe || goto unknown');
  });

  it('serves the per-MAC agent script of a registered MAC once, with its token, and logs the host (never the token) with the request', async () => {
    // A HEAD is no fetch: it must not burn the boot's one script.
    const head = await request(server.url + PXE_PATHS.macScript(mac), { method: 'HEAD' });
    await head.body.text();
    expect(head.statusCode).toBe(404);
    const res = await request(server.url + PXE_PATHS.macScript(mac));
    expect(res.statusCode).toBe(200);
    const body = await res.body.text();
    expect(body).toMatch(/^#!ipxe\n/);
    expect(body).toContain(`kernel http://10.99.0.1:8080/files/${AGENT_BOOT_FILES.kernel} `);
    expect(body).toMatch(/ironflow\.api=http:\/\/10\.99\.0\.1:8080 ironflow\.boot=boot-1 ironflow\.token=[A-Za-z0-9_-]{43} /);
    expect(body).toContain('ironflow.debug=1');
    expect(body).toContain(`initrd http://10.99.0.1:8080/files/${AGENT_BOOT_FILES.initramfs}`);
    expect(sessions.bootOf(host)?.lastServedAt).toBeDefined();
    const token = /ironflow\.token=(\S+)/.exec(body)![1]!;
    const line = logLines.find((l) => l.msg === 'http request' && l.mac === mac && l.status === 200);
    expect(line).toMatchObject({ host: 'metal3/server-01', status: 200, method: 'GET' });
    expect(JSON.stringify(logLines)).not.toContain(token);
    // The kernel download that follows from the same address is logged with the same machine.
    await (await request(server.url + PXE_PATHS.file(AGENT_BOOT_FILES.kernel), { headers: { range: 'bytes=0-0' } })).body.arrayBuffer();
    await new Promise((r) => setImmediate(r));
    const fileLine = logLines.filter((l) => l.msg === 'http request' && l.file === AGENT_BOOT_FILES.kernel).pop();
    expect(fileLine).toMatchObject({ mac, host: 'metal3/server-01', status: 206, bytes: '1' });
  });

  it('answers an unknown MAC with 404 and records it for discovery, counting repeat visits', async () => {
    const unknown = '52-54-00-00-00-99';
    for (let i = 0; i < 2; i++) {
      const res = await request(`${server.url}/boot/${unknown}.ipxe`);
      expect(res.statusCode).toBe(404);
      await res.body.text();
    }
    const listed = await createPxeActivities({ sessions, log: pino({ level: 'silent' }) }).listDiscovered();
    expect(listed).toEqual([expect.objectContaining({ mac: '52:54:00:00:00:99', sourceIp: '127.0.0.1', source: 'http', count: 2 })]);
    // Discovery survives a restart: it is in the store's file.
    await sessions.flush();
    const reopened = await SessionStore.open({ file: path.join(dir, 'state', 'sessions.json') });
    expect(reopened.discovered()[0]?.mac).toBe('52:54:00:00:00:99');
    expect(reopened.bootOf(host)?.bootId).toBe('boot-1');
  });

  it('says nothing back of what the client asked for: no MAC, no file name', async () => {
    const unknown = await rawGet(server.port, '/boot/52-54-00-00-0a-99.ipxe');
    expect(unknown.status).toBe(404);
    expect(unknown.body).not.toMatch(/52.54.00.00.0a.99/);
    const missing = await rawGet(server.port, '/files/no-such-file-XYZZY');
    expect(missing.status).toBe(404);
    expect(missing.body).not.toContain('XYZZY');
  });

  it('rejects a malformed per-MAC name with 400', async () => {
    expect((await rawGet(server.port, '/boot/not-a-mac.ipxe')).status).toBe(400);
  });

  it('serves a byte range of a file with 206 and Content-Range, and the whole file with 200', async () => {
    const part = await request(server.url + PXE_PATHS.file(AGENT_BOOT_FILES.kernel), { headers: { range: 'bytes=1000-1999' } });
    expect(part.statusCode).toBe(206);
    expect(part.headers['content-range']).toBe(`bytes 1000-1999/${kernel.length}`);
    expect(Buffer.from(await part.body.arrayBuffer()).equals(kernel.subarray(1000, 2000))).toBe(true);

    const tail = await request(server.url + PXE_PATHS.file(AGENT_BOOT_FILES.kernel), { headers: { range: 'bytes=-17' } });
    expect(Buffer.from(await tail.body.arrayBuffer()).equals(kernel.subarray(kernel.length - 17))).toBe(true);

    const whole = await request(server.url + PXE_PATHS.file(AGENT_BOOT_FILES.kernel));
    expect(whole.statusCode).toBe(200);
    const got = Buffer.from(await whole.body.arrayBuffer());
    expect(createHash('sha256').update(got).digest('hex')).toBe(createHash('sha256').update(kernel).digest('hex'));

    const beyond = await request(server.url + PXE_PATHS.file(AGENT_BOOT_FILES.kernel), { headers: { range: `bytes=${kernel.length}-` } });
    expect(beyond.statusCode).toBe(416);
    expect(beyond.headers['content-range']).toBe(`bytes */${kernel.length}`);
    await beyond.body.text();
  });

  it.each([
    ['../ in the path', '/files/../secret.txt'],
    ['an encoded ../', '/files/%2e%2e/secret.txt'],
    ['an encoded slash and ..', '/files/..%2fsecret.txt'],
    ['an absolute path after /files/', '/files//etc/passwd'],
    ['a symlink out of the root', '/files/escape.txt'],
  ])('refuses %s (%s) without the file outside the root', async (_what, rawPath) => {
    const res = await rawGet(server.port, rawPath);
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.body).not.toContain('outside');
    expect(res.body).not.toContain('root:');
    // Still serving after the refusal.
    const ok = await request(server.url + PXE_PATHS.file(AGENT_BOOT_FILES.kernel), { headers: { range: 'bytes=0-9' } });
    expect(ok.statusCode).toBe(206);
    await ok.body.arrayBuffer();
  });

  it('lets another module register a plugin (the agent API) on the same fastify instance before it listens', async () => {
    const app = await buildHttpBootApp({
      filesDir: path.join(dir, 'files'),
      sessions,
      log: pino({ level: 'silent' }),
      baseUrl: () => 'http://10.99.0.1:8080',
      plugins: [{ plugin: async (a) => void a.get('/ping', async () => ({ pong: true })), prefix: '/v1/agent' }],
    });
    try {
      await app.listen({ host: '127.0.0.1', port: 0 });
      const addr = app.server.address();
      const res = await request(`http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/v1/agent/ping`);
      expect(await res.body.json()).toEqual({ pong: true });
    } finally {
      await app.close();
    }
  });
});
