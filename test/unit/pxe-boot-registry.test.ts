import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { ApplicationFailure } from '@temporalio/common';
import { createPxeActivities, PXE_MAC_CONFLICT } from '../../activities/pxe/activities';
import { BootRegistry } from '../../activities/pxe/boot-registry';
import { checkRequestedName } from '../../activities/pxe/confined-file';
import { parseRange } from '../../activities/pxe/http-boot';

const host = { namespace: 'metal3', name: 'server-01' };
const other = { namespace: 'metal3', name: 'server-02' };
const mac = '52:54:00:12:34:56';
const log = pino({ level: 'silent' });

function activities(registry: BootRegistry) {
  let n = 0;
  return createPxeActivities({ registry, log, newBootId: () => `boot-${++n}` });
}

describe('prepareBoot / clearBoot / listDiscovered', () => {
  it('returns the same boot id for the same host and mode while the entry stands (an activity retry changes nothing)', async () => {
    const a = activities(await BootRegistry.open());
    expect(await a.prepareBoot({ host, mac, mode: 'agent' })).toEqual({ bootId: 'boot-1' });
    expect(await a.prepareBoot({ host, mac: '52-54-00-12-34-56', mode: 'agent' })).toEqual({ bootId: 'boot-1' });
  });

  it.each([
    ['renew is asked for', { renew: true }],
    ['the mode changes', { mode: 'disk' as const }],
    ['the kernel arguments change', { kernelArgs: ['ironflow.debug=1'] }],
  ])('issues a new boot id when %s', async (_why, change) => {
    const a = activities(await BootRegistry.open());
    await a.prepareBoot({ host, mac, mode: 'agent' });
    expect(await a.prepareBoot({ host, mac, mode: 'agent', ...change })).toEqual({ bootId: 'boot-2' });
  });

  it('refuses a MAC registered to another host, non-retryably, naming both hosts', async () => {
    const a = activities(await BootRegistry.open());
    await a.prepareBoot({ host, mac, mode: 'agent' });
    const err = await a.prepareBoot({ host: other, mac, mode: 'agent' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: PXE_MAC_CONFLICT, nonRetryable: true });
    expect((err as Error).message).toContain('metal3/server-01');
    expect((err as Error).message).toContain('metal3/server-02');
    await expect(a.clearBoot({ host: other, mac })).rejects.toMatchObject({ type: PXE_MAC_CONFLICT });
  });

  it('refuses a bootMACAddress that is not a MAC, naming the host', async () => {
    const a = activities(await BootRegistry.open());
    await expect(a.prepareBoot({ host, mac: 'nope', mode: 'agent' })).rejects.toMatchObject({ nonRetryable: true, message: expect.stringContaining('metal3/server-01') });
  });

  it('clearBoot is idempotent, and the next prepareBoot issues a fresh boot id', async () => {
    const a = activities(await BootRegistry.open());
    await a.prepareBoot({ host, mac, mode: 'agent' });
    expect(await a.clearBoot({ host, mac })).toEqual({ cleared: true });
    expect(await a.clearBoot({ host, mac })).toEqual({ cleared: false });
    expect(await a.prepareBoot({ host, mac, mode: 'agent' })).toEqual({ bootId: 'boot-2' });
  });
});

describe('the boot registry', () => {
  it('keeps entries and discovery across a restart (JSON file), and a registered MAC leaves the discovery list', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'ironflow-reg-')), 'sub', 'registry.json');
    const r1 = await BootRegistry.open({ file });
    await r1.recordUnknown({ mac: 'aa:bb:cc:dd:ee:01', sourceIp: '10.99.0.5', source: 'dhcp' });
    await r1.recordUnknown({ mac: mac, sourceIp: '10.99.0.6', source: 'http' });
    await activities(r1).prepareBoot({ host, mac, mode: 'disk' });
    await r1.flush();
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ version: 1 });
    const r2 = await BootRegistry.open({ file });
    expect(r2.get(mac)).toMatchObject({ host, mode: 'disk', bootId: 'boot-1' });
    expect(r2.discovered().map((d) => d.mac)).toEqual(['aa:bb:cc:dd:ee:01']);
  });

  it('counts repeat sightings and keeps the first one', async () => {
    let t = 0;
    const r = await BootRegistry.open({ now: () => new Date(Date.UTC(2026, 0, 1, 0, 0, t++)) });
    await r.recordUnknown({ mac: 'aa:bb:cc:dd:ee:01', sourceIp: '10.99.0.5', source: 'dhcp' });
    await r.recordUnknown({ mac: 'AA-BB-CC-DD-EE-01', sourceIp: '10.99.0.7', source: 'http' });
    expect(r.discovered()).toEqual([
      { mac: 'aa:bb:cc:dd:ee:01', firstSeen: '2026-01-01T00:00:00.000Z', lastSeen: '2026-01-01T00:00:01.000Z', sourceIp: '10.99.0.7', source: 'http', count: 2 },
    ]);
  });

  it('bounds the discovery list, forgetting the MAC seen longest ago', async () => {
    let t = 0;
    const r = await BootRegistry.open({ maxDiscovered: 2, now: () => new Date(Date.UTC(2026, 0, 1, 0, 0, t++)) });
    for (const m of ['aa:00:00:00:00:01', 'aa:00:00:00:00:02', 'aa:00:00:00:00:03']) await r.recordUnknown({ mac: m, sourceIp: '10.99.0.5', source: 'dhcp' });
    expect(r.discovered().map((d) => d.mac)).toEqual(['aa:00:00:00:00:03', 'aa:00:00:00:00:02']);
  });

  it('names the file when it is not a registry', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'ironflow-reg-')), 'registry.json');
    writeFileSync(file, '{not json');
    await expect(BootRegistry.open({ file })).rejects.toThrow(file);
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
