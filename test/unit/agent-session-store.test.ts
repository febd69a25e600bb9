/**
 * The plane's durable session store (activities/agent/session-store.ts) and
 * the PXE activities over it: which boot is current, tokens minted on the one
 * script fetch, MAC claims, discovery bounds, and the file it survives a
 * restart in.
 */
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { ApplicationFailure } from '@temporalio/common';
import { FAILURE } from '../../api/errors';
import { SessionStore, type SessionStoreOptions } from '../../activities/agent/session-store';
import { createPxeActivities } from '../../activities/pxe/activities';
import { checkRequestedName } from '../../activities/pxe/confined-file';
import { parseRange } from '../../activities/pxe/http-boot';

const host = { namespace: 'metal3', name: 'server-01' };
const other = { namespace: 'metal3', name: 'server-02' };
const tenant = { namespace: 'tenant-b', name: 'intruder' };
const mac = '52:54:00:12:34:56';
const log = pino({ level: 'silent' });
const tmp = () => mkdtempSync(path.join(tmpdir(), 'ironflow-store-'));

let seq = 0;
async function open(opts: SessionStoreOptions = {}) {
  let n = 0;
  return SessionStore.open({ newBootId: () => `boot-${++n}`, newToken: () => `token-${++seq}-${'x'.repeat(40)}`, ...opts });
}
const inspect = (id: string) => ({ command: { id, type: 'inspect' as const }, expected: {} });

describe('prepareBoot / clearBoot (PXE activities over the store)', () => {
  it('returns the same boot id for the same host and mode while the boot stands (an activity retry changes nothing)', async () => {
    const a = createPxeActivities({ sessions: await open(), log });
    expect(await a.prepareBoot({ host, mac, mode: 'disk' })).toEqual({ bootId: 'boot-1' });
    expect(await a.prepareBoot({ host, mac: '52-54-00-12-34-56', mode: 'disk' })).toEqual({ bootId: 'boot-1' });
  });

  it.each([
    ['renew is asked for', { renew: true }],
    ['the mode changes', { mode: 'none' as const }],
    ['the kernel arguments change', { kernelArgs: ['ironflow.debug=1'] }],
  ])('issues a new boot id when %s', async (_why, change) => {
    const a = createPxeActivities({ sessions: await open(), log });
    await a.prepareBoot({ host, mac, mode: 'disk' });
    expect(await a.prepareBoot({ host, mac, mode: 'disk', ...change })).toEqual({ bootId: 'boot-2' });
  });

  it('refuses a MAC another host holds, non-retryably, naming both hosts of the same namespace', async () => {
    const a = createPxeActivities({ sessions: await open(), log });
    await a.prepareBoot({ host, mac, mode: 'disk' });
    const err = await a.prepareBoot({ host: other, mac, mode: 'disk' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: FAILURE.PxeMacConflict, nonRetryable: true });
    expect((err as Error).message).toContain('metal3/server-01');
    expect((err as Error).message).toContain('metal3/server-02');
    await expect(a.clearBoot({ host: other, mac })).rejects.toMatchObject({ type: FAILURE.PxeMacConflict });
  });

  it('refuses a bootMACAddress that is not a MAC, naming the host', async () => {
    const a = createPxeActivities({ sessions: await open(), log });
    await expect(a.prepareBoot({ host, mac: 'nope', mode: 'disk' })).rejects.toMatchObject({ nonRetryable: true, message: expect.stringContaining('metal3/server-01') });
  });

  it('clearBoot is idempotent, the host keeps its MAC, and the next prepareBoot issues a fresh boot id', async () => {
    const sessions = await open();
    const a = createPxeActivities({ sessions, log });
    await a.prepareBoot({ host, mac, mode: 'disk' });
    expect(await a.clearBoot({ host, mac })).toEqual({ cleared: true });
    expect(await a.clearBoot({ host, mac })).toEqual({ cleared: false });
    expect(sessions.claimOf(mac)).toEqual(host);
    await expect(a.prepareBoot({ host: other, mac, mode: 'disk' })).rejects.toMatchObject({ type: FAILURE.PxeMacConflict });
    expect(await a.prepareBoot({ host, mac, mode: 'disk' })).toEqual({ bootId: 'boot-2' });
  });
});

describe('boot MAC claims', () => {
  it('a claim across namespaces is refused without naming the holder (tenant isolation), and the holder keeps its MAC while resting', async () => {
    const s = await open();
    await s.claim(host, mac);
    const err = (await s.claim(tenant, mac).catch((e: Error) => e)) as Error;
    expect(err.message).toContain('held by a BareMetalHost in another namespace');
    expect(err.message).not.toContain('server-01');
    await expect(s.startSession(tenant, mac, inspect('x'))).rejects.toThrow(/another namespace/);
    expect(s.claimOf(mac)).toEqual(host);
  });

  it('the claim goes when its host is forgotten (object deleted); then another host may take the MAC', async () => {
    const s = await open();
    await s.startSession(host, mac, inspect('c1'));
    await s.forgetHost(host);
    expect(s.claimOf(mac)).toBeUndefined();
    expect(s.bootForMac(mac)).toBeUndefined();
    await s.claim(other, mac);
    expect(s.claimOf(mac)).toEqual(other);
  });

  it('a host holds one boot MAC: claiming a new one releases the old one and ends a boot on it', async () => {
    const s = await open();
    await s.startSession(host, mac, inspect('c1'));
    await s.claim(host, '52:54:00:12:34:57');
    expect(s.claimOf(mac)).toBeUndefined();
    expect(s.bootForMac(mac)).toBeUndefined();
    expect(s.view(host, 'c1')).toMatchObject({ state: 'invalidated', invalidatedReason: expect.stringContaining('boot MAC changed') });
  });
});

describe('agent sessions', () => {
  it('startSession is idempotent by command id, even after the session ended', async () => {
    const s = await open();
    expect(await s.startSession(host, mac, inspect('c1'))).toEqual({ bootId: 'boot-1', created: true });
    expect(await s.startSession(host, mac, inspect('c1'))).toEqual({ bootId: 'boot-1', created: false });
    await s.startSession(host, mac, inspect('c2'));
    expect(await s.startSession(host, mac, inspect('c1'))).toEqual({ bootId: 'boot-1', created: false });
    expect(s.view(host, 'c1')).toMatchObject({ state: 'invalidated', invalidatedReason: expect.stringMatching(/^superseded/) });
    expect(s.view(host, 'c2')).toMatchObject({ bootId: 'boot-2', state: 'prepared' });
  });

  it('the script is served once: the first fetch mints the token, a second ends the boot with an invalidated report', async () => {
    const s = await open();
    await s.startSession(host, mac, inspect('c1'));
    const first = await s.serveScript(mac);
    expect(first).toMatchObject({ kind: 'serve', host, boot: { mode: 'agent', bootId: 'boot-1' } });
    const token = (first as { token: string }).token;
    expect(s.authenticate(token)).toMatchObject({ ok: true, host, session: { state: 'booting' } });
    const second = await s.serveScript(mac);
    expect(second).toMatchObject({ kind: 'refuse', invalidated: { bootId: 'boot-1', invalidated: true, report: { commandId: 'c1', status: 'failed' } } });
    expect(second).not.toHaveProperty('token');
    expect(s.authenticate(token)).toMatchObject({ ok: false, status: 403 });
    expect(s.view(host, 'c1')).toMatchObject({ state: 'invalidated', invalidatedReason: expect.stringContaining('fetched a second time') });
    expect(s.pendingDeliveries()).toEqual([expect.objectContaining({ bootId: 'boot-1', signal: expect.objectContaining({ invalidated: true }) })]);
    expect(JSON.stringify(second)).not.toContain(token);
  });

  it('disk and none boots are served every time, and never carry a token', async () => {
    const s = await open();
    await s.prepareBoot(host, mac, 'disk');
    for (let i = 0; i < 3; i++) expect(await s.serveScript(mac)).toEqual(expect.objectContaining({ kind: 'serve', boot: expect.objectContaining({ mode: 'disk' }) }));
    expect(await s.serveScript(mac)).not.toHaveProperty('token');
  });

  it('tokens: none or unknown 401; an ended boot\'s 403; a forgotten host\'s 401', async () => {
    const s = await open();
    await s.startSession(host, mac, inspect('c1'));
    const t1 = ((await s.serveScript(mac)) as { token: string }).token;
    expect(s.authenticate(undefined)).toMatchObject({ ok: false, status: 401 });
    expect(s.authenticate('A'.repeat(43))).toMatchObject({ ok: false, status: 401 });
    await s.startSession(host, mac, inspect('c2'));
    expect(s.authenticate(t1)).toMatchObject({ ok: false, status: 403, owner: host });
    await s.forgetHost(host);
    expect(s.authenticate(t1)).toMatchObject({ ok: false, status: 401 });
  });

  it('a final report is kept with the session and waits in the outbox until delivered', async () => {
    const s = await open();
    await s.startSession(host, mac, inspect('c1'));
    await s.serveScript(mac);
    const signal = await s.finish(host, 'boot-1', { commandId: 'c1', type: 'inspect', status: 'failed', message: 'x' });
    expect(s.pendingDeliveries()).toEqual([{ host, bootId: 'boot-1', signal, attempts: 0 }]);
    await s.noteDelivery(host, 'boot-1', 'temporal down');
    expect(s.pendingDeliveries()[0]).toMatchObject({ attempts: 1 });
    await s.noteDelivery(host, 'boot-1');
    expect(s.pendingDeliveries()).toEqual([]);
    await expect(s.finish(host, 'boot-1', { commandId: 'c1', type: 'inspect', status: 'failed', message: 'again' })).rejects.toThrow(/no live session/);
  });
});

describe('the store file', () => {
  it('survives a reopen (a restarted plane): boots, sessions, token hashes, claims, outbox; mode 0600; no plaintext token or user data', async () => {
    const file = path.join(tmp(), 'sub', 'sessions.json');
    const s1 = await open({ file });
    await s1.startSession(host, mac, {
      command: { id: 'd1', type: 'deploy', imageUrl: 'http://10.0.0.1/os.img', checksum: 'a'.repeat(64), checksumType: 'sha256', hasUserData: true },
      userData: { namespace: 'metal3', name: 'ud-secret' },
      expected: { imageSampleSha256: 'b'.repeat(64) },
    });
    const token = ((await s1.serveScript(mac)) as { token: string }).token;
    await s1.startSession(other, '52:54:00:00:00:02', inspect('i2'));
    await s1.serveScript('52:54:00:00:00:02');
    await s1.finish(other, 'boot-2', { commandId: 'i2', type: 'inspect', status: 'failed', message: 'no disks' });
    await s1.flush();

    const text = readFileSync(file, 'utf8');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(text).not.toContain(token);
    expect(JSON.parse(text)).toMatchObject({ format: 'ironflow-boot-sessions', version: 1 });

    const s2 = await SessionStore.open({ file });
    expect(s2.authenticate(token)).toMatchObject({ ok: true, host, session: { bootId: 'boot-1', state: 'booting', userData: { namespace: 'metal3', name: 'ud-secret' } } });
    expect(s2.claimOf(mac)).toEqual(host);
    expect(s2.pendingDeliveries()).toEqual([expect.objectContaining({ host: other, bootId: 'boot-2' })]);
    expect(s2.snapshot()).toEqual(s1.snapshot());
  });

  it('names the file when it is not a session store, and never half-uses it', async () => {
    const file = path.join(tmp(), 'sessions.json');
    writeFileSync(file, '{not json');
    await expect(SessionStore.open({ file })).rejects.toThrow(file);
    writeFileSync(file, JSON.stringify({ version: 1, entries: {} }));
    await expect(SessionStore.open({ file })).rejects.toThrow(/not a version 1 ironflow-boot-sessions file/);
  });

  it('imports an older plane\'s boot-registry.json once (disk/none boots and discovery; agent boots had in-memory tokens)', async () => {
    const dir = tmp();
    const legacy = path.join(dir, 'boot-registry.json');
    writeFileSync(legacy, JSON.stringify({
      version: 1,
      entries: {
        [mac]: { mac, host, mode: 'disk', bootId: 'old-1', kernelArgs: [], preparedAt: '2026-01-01T00:00:00.000Z' },
        '52:54:00:00:00:02': { mac: '52:54:00:00:00:02', host: other, mode: 'agent', bootId: 'old-2', kernelArgs: [], preparedAt: '2026-01-01T00:00:00.000Z' },
      },
      discovered: { 'aa:00:00:00:00:01': { mac: 'aa:00:00:00:00:01', firstSeen: '2026-01-01T00:00:00.000Z', lastSeen: new Date().toISOString(), source: 'dhcp', count: 3 } },
    }));
    const s = await SessionStore.open({ file: path.join(dir, 'sessions.json'), legacyRegistryFile: legacy });
    expect(s.bootOf(host)).toMatchObject({ mode: 'disk', bootId: 'old-1' });
    expect(s.bootOf(other)).toBeUndefined();
    expect(s.discovered().map((d) => d.mac)).toEqual(['aa:00:00:00:00:01']);
    expect(() => readFileSync(legacy)).toThrow(/ENOENT/);
  });
});

describe('discovery records', () => {
  it('counts repeat sightings and keeps the first one; a registered MAC is never recorded', async () => {
    let t = 0;
    const s = await open({ now: () => new Date(Date.UTC(2026, 0, 1, 0, 0, t)), discovery: { ttlMs: 1e12 } });
    s.recordUnknown({ mac: 'aa:bb:cc:dd:ee:01', sourceIp: '10.99.0.5', source: 'dhcp' });
    t = 1;
    s.recordUnknown({ mac: 'AA-BB-CC-DD-EE-01', sourceIp: '10.99.0.7', source: 'http' });
    await s.claim(host, mac);
    expect(s.recordUnknown({ mac, source: 'http' }).outcome).toBe('registered');
    expect(s.discovered()).toEqual([
      { mac: 'aa:bb:cc:dd:ee:01', firstSeen: '2026-01-01T00:00:00.000Z', lastSeen: '2026-01-01T00:00:01.000Z', sourceIp: '10.99.0.7', source: 'http', count: 2 },
    ]);
  });

  it('a cap: once full, new MACs are counted, not stored, and nothing is evicted for them', async () => {
    const s = await open({ discovery: { maxRecords: 2, burst: 100 } });
    const outcomes = ['aa:00:00:00:00:01', 'aa:00:00:00:00:02', 'aa:00:00:00:00:03', 'aa:00:00:00:00:04'].map((m) => s.recordUnknown({ mac: m, source: 'dhcp' }).outcome);
    expect(outcomes).toEqual(['recorded', 'recorded', 'dropped-cap', 'dropped-cap']);
    expect(s.discovered().map((d) => d.mac).sort()).toEqual(['aa:00:00:00:00:01', 'aa:00:00:00:00:02']);
    expect(s.recordUnknown({ mac: 'aa:00:00:00:00:01', source: 'dhcp' }).outcome).toBe('refreshed');
    expect(s.discovery.stats()).toEqual({ records: 2, droppedCap: 2, droppedRate: 0 });
  });

  it('a rate limit on new MACs: beyond the burst they are counted, until time refills the bucket', async () => {
    let ms = 0;
    const s = await open({ now: () => new Date(ms), discovery: { maxRecords: 100, burst: 3, newPerSecond: 1 } });
    const seen = (i: number) => s.recordUnknown({ mac: `aa:00:00:00:01:${i.toString(16).padStart(2, '0')}`, source: 'http' }).outcome;
    expect([1, 2, 3, 4, 5].map(seen)).toEqual(['recorded', 'recorded', 'recorded', 'dropped-rate', 'dropped-rate']);
    ms += 2000;
    expect([6, 7, 8].map(seen)).toEqual(['recorded', 'recorded', 'dropped-rate']);
    expect(s.discovery.stats()).toMatchObject({ records: 5, droppedRate: 3 });
  });

  it('records not seen for the TTL expire and free their place', async () => {
    let ms = 0;
    const s = await open({ now: () => new Date(ms), discovery: { maxRecords: 1, ttlMs: 1000 } });
    expect(s.recordUnknown({ mac: 'aa:00:00:00:00:01', source: 'http' }).outcome).toBe('recorded');
    expect(s.recordUnknown({ mac: 'aa:00:00:00:00:02', source: 'http' }).outcome).toBe('dropped-cap');
    ms += 1001;
    expect(s.recordUnknown({ mac: 'aa:00:00:00:00:02', source: 'http' }).outcome).toBe('recorded');
    expect(s.discovered().map((d) => d.mac)).toEqual(['aa:00:00:00:00:02']);
  });
});

describe('HTTP Range (one range; RFC 9110)', () => {
  it.each([
    ['bytes=0-9', 100, { start: 0, end: 9 }],
    ['bytes=90-', 100, { start: 90, end: 99 }],
    ['bytes=-10', 100, { start: 90, end: 99 }],
    ['bytes=-500', 100, { start: 0, end: 99 }],
    ['bytes=50-500', 100, { start: 50, end: 99 }],
    ['bytes=100-', 100, 'unsatisfiable'],
    ['bytes=-0', 100, 'unsatisfiable'],
    ['bytes=9-3', 100, 'unsatisfiable'],
    ['bytes=0-1,5-6', 100, undefined],
    ['items=0-1', 100, undefined],
  ])('%s of a %i-byte file -> %j', (header, size, want) => {
    expect(parseRange(header, size)).toEqual(want);
  });
});

describe('requested names under a served root', () => {
  it.each([
    ['../x', 'traversal'],
    ['a/../../x', 'traversal'],
    ['a/..', 'traversal'],
    ['/etc/passwd', 'absolute'],
    ['a\\..\\x', 'bad-name'],
    ['a\0b', 'bad-name'],
    ['', 'bad-name'],
  ])('refuses %j (%s)', (name, reason) => {
    expect(() => checkRequestedName(name)).toThrow(expect.objectContaining({ reason }));
  });

  it.each([['ipxe.efi'], ['sub/undionly.kpxe'], ['a/./b']])('accepts %j', (name) => {
    expect(() => checkRequestedName(name)).not.toThrow();
  });
});
