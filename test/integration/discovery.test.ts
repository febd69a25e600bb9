import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import pino from 'pino';
import { request } from 'undici';
import { PXE_PATHS } from '../../api/pxe';
import { createPxeActivities } from '../../activities/pxe/activities';
import { SessionStore } from '../../activities/agent/session-store';
import { start, type HttpBootServer } from '../../activities/pxe/http-boot';
import { DISCOVERY_KEYS, SERVER_RESOURCE, serverNameForMac, startDiscoveryReporter, type DiscoveryReporter } from '../../workers/discovery';
import { kubeTestContext, type KubeTestContext } from '../helpers/env';

interface ServerObject {
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: { accepted: boolean; cordoned?: boolean };
}

// Servers are cluster-scoped, so each run uses MACs of its own (52:54:00 + random) to stay apart from other runs.
const randomMac = () => `52:54:00:${[...randomBytes(3)].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;

describe('discovery reporter: unknown PXE MACs become unaccepted Sidero Servers (real HTTP server, real kube-apiserver)', () => {
  let kube: KubeTestContext;
  let api: CustomObjectsApi;
  let dir: string;
  let registry: SessionStore;
  let server: HttpBootServer;
  let reporter: DiscoveryReporter;
  const log = pino({ level: 'silent' });

  const getScript = async (mac: string) => {
    const res = await request(server.url + PXE_PATHS.macScript(mac));
    await res.body.text();
    return res.statusCode;
  };
  const readServer = async (mac: string) =>
    (await api.getClusterCustomObject({ ...SERVER_RESOURCE, name: serverNameForMac(mac) })) as ServerObject;
  const serverExists = async (mac: string) =>
    readServer(mac).then(
      () => true,
      (err: { code?: number }) => {
        if (err.code === 404) return false;
        throw err;
      },
    );

  beforeAll(async () => {
    kube = await kubeTestContext('discovery');
    api = kube.kc.makeApiClient(CustomObjectsApi);
    dir = mkdtempSync(path.join(tmpdir(), 'ironflow-discovery-'));
    // Room for every MAC these tests see (the bounds have a test of their own below).
    registry = await SessionStore.open({ discovery: { burst: 1000 } });
    server = await start({ host: '127.0.0.1', port: 0, filesDir: dir, sessions: registry, log });
    // A long interval: the test drives syncs itself with syncOnce.
    reporter = startDiscoveryReporter({ kc: kube.kc, sessions: registry, intervalMs: 60_000, log });
  });
  afterAll(async () => {
    await reporter?.stop();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
    await kube?.cleanup();
  });

  it('reports an unknown MAC once, with accepted false, and refreshes only its annotations on later boots', async () => {
    const mac = randomMac();
    expect(await getScript(mac)).toBe(404);
    expect(await reporter.syncOnce()).toBe(1);

    const first = await readServer(mac);
    expect(first.spec.accepted).toBe(false);
    expect(first.metadata.labels?.[DISCOVERY_KEYS.discoveredLabel]).toBe('true');
    expect(first.metadata.labels?.[DISCOVERY_KEYS.macLabel]).toBe(mac.replace(/:/g, '-'));
    expect(first.metadata.annotations).toMatchObject({
      [DISCOVERY_KEYS.mac]: mac,
      [DISCOVERY_KEYS.bootAttempts]: '1',
      [DISCOVERY_KEYS.source]: 'http',
      [DISCOVERY_KEYS.sourceIp]: '127.0.0.1',
    });
    const firstSeen = first.metadata.annotations?.[DISCOVERY_KEYS.firstSeen];
    expect(Date.parse(firstSeen ?? '')).not.toBeNaN();

    // An operator cordons it meanwhile; the reporter must not undo that or touch spec.
    await api.patchClusterCustomObject(
      { ...SERVER_RESOURCE, name: serverNameForMac(mac), body: { spec: { cordoned: true } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );

    expect(await getScript(mac)).toBe(404);
    expect(await reporter.syncOnce()).toBe(0);
    const list = (await api.listClusterCustomObject({ ...SERVER_RESOURCE, labelSelector: `${DISCOVERY_KEYS.macLabel}=${mac.replace(/:/g, '-')}` })) as { items: ServerObject[] };
    expect(list.items.map((s) => s.metadata.name)).toEqual([serverNameForMac(mac)]);
    const second = list.items[0]!;
    expect(second.metadata.annotations?.[DISCOVERY_KEYS.bootAttempts]).toBe('2');
    expect(second.metadata.annotations?.[DISCOVERY_KEYS.firstSeen]).toBe(firstSeen);
    expect((second.metadata.annotations?.[DISCOVERY_KEYS.lastSeen] ?? '') >= (firstSeen ?? '')).toBe(true);
    expect(second.spec).toEqual({ accepted: false, cordoned: true });
  });

  it('never flips accepted: an operator-accepted Server stays accepted across later boots and syncs', async () => {
    const mac = randomMac();
    expect(await getScript(mac)).toBe(404);
    expect(await reporter.syncOnce()).toBe(1);
    await api.patchClusterCustomObject(
      { ...SERVER_RESOURCE, name: serverNameForMac(mac), body: { spec: { accepted: true } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    expect(await getScript(mac)).toBe(404);
    await reporter.syncOnce();
    const s = await readServer(mac);
    expect(s.spec.accepted).toBe(true);
    expect(s.metadata.annotations?.[DISCOVERY_KEYS.bootAttempts]).toBe('2');
  });

  it('is idempotent across restarts: a new reporter finds the Server (409) and creates nothing', async () => {
    const mac = randomMac();
    expect(await getScript(mac)).toBe(404);
    expect(await reporter.syncOnce()).toBe(1);
    expect(await getScript(mac)).toBe(404);
    const again = startDiscoveryReporter({ kc: kube.kc, sessions: registry, intervalMs: 60_000, log });
    try {
      expect(await again.syncOnce()).toBe(0);
    } finally {
      await again.stop();
    }
    expect((await readServer(mac)).metadata.annotations?.[DISCOVERY_KEYS.bootAttempts]).toBe('2');
  });

  it('creates no Server for a MAC registered to a host, whether prepared before or after it was first seen', async () => {
    const pxe = createPxeActivities({ sessions: registry, log });
    const host = { namespace: kube.namespace, name: 'server-01' };

    const prepared = randomMac();
    await pxe.prepareBoot({ host, mac: prepared, mode: 'disk', kernelArgs: [] });
    expect(await getScript(prepared)).toBe(200);

    // Seen while unknown, registered before the reporter synced.
    const late = randomMac();
    expect(await getScript(late)).toBe(404);
    expect(registry.discovered().map((d) => d.mac)).toContain(late);
    await pxe.prepareBoot({ host: { ...host, name: 'server-02' }, mac: late, mode: 'disk', kernelArgs: [] });

    expect(await reporter.syncOnce()).toBe(0);
    expect(await serverExists(prepared)).toBe(false);
    expect(await serverExists(late)).toBe(false);
  });

  it('leaves an existing Server alone once its MAC is registered to a host', async () => {
    const mac = randomMac();
    expect(await getScript(mac)).toBe(404);
    expect(await reporter.syncOnce()).toBe(1);
    const before = await readServer(mac);
    await createPxeActivities({ sessions: registry, log }).prepareBoot({ host: { namespace: kube.namespace, name: 'server-03' }, mac, mode: 'disk', kernelArgs: [] });
    expect(await getScript(mac)).toBe(200);
    expect(await reporter.syncOnce()).toBe(0);
    const after = await readServer(mac);
    expect(after.metadata.annotations).toEqual(before.metadata.annotations);
    expect(after.spec.accepted).toBe(false);
  });

  it('reports on its own timer, without syncOnce', async () => {
    const mac = randomMac();
    expect(await getScript(mac)).toBe(404);
    const timed = startDiscoveryReporter({ kc: kube.kc, sessions: registry, intervalMs: 50, log });
    try {
      const deadline = Date.now() + 5_000;
      while (!(await serverExists(mac)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    } finally {
      await timed.stop();
    }
    expect(await serverExists(mac)).toBe(true);
  });

  it('bounds the writes of one sync', async () => {
    const macs = [randomMac(), randomMac(), randomMac()];
    for (const m of macs) expect(await getScript(m)).toBe(404);
    const bounded = startDiscoveryReporter({ kc: kube.kc, sessions: registry, intervalMs: 60_000, maxWritesPerSync: 2, log });
    try {
      expect(await bounded.syncOnce()).toBe(2);
      expect(await bounded.syncOnce()).toBe(1);
    } finally {
      await bounded.stop();
    }
    for (const m of macs) expect(await serverExists(m)).toBe(true);
  });
});

describe('a discovery flood (issue 13: 20k PXE requests from random MACs made 5,025 Servers)', () => {
  let kube: KubeTestContext;
  let api: CustomObjectsApi;
  let dir: string;
  const log = pino({ level: 'silent' });
  const flooded: string[] = [];

  beforeAll(async () => {
    kube = await kubeTestContext('discovery-flood');
    api = kube.kc.makeApiClient(CustomObjectsApi);
    dir = mkdtempSync(path.join(tmpdir(), 'ironflow-discovery-flood-'));
  });
  afterAll(async () => {
    // Servers are cluster-scoped: take this test's away so later runs start from their own.
    const list = (await api.listClusterCustomObject({ ...SERVER_RESOURCE, labelSelector: `${DISCOVERY_KEYS.discoveredLabel}=true` })) as { items: ServerObject[] };
    const mine = new Set(flooded);
    for (const s of list.items) {
      if (mine.has(s.metadata.annotations?.[DISCOVERY_KEYS.mac] ?? '')) await api.deleteClusterCustomObject({ ...SERVER_RESOURCE, name: s.metadata.name }).catch(() => undefined);
    }
    rmSync(dir, { recursive: true, force: true });
    await kube?.cleanup();
  });

  it('20,000 random MACs: Server objects stay at or under the cap, the rest are counted, and the plane keeps answering', async () => {
    const maxServers = 40;
    // The production limits for records and rate (256 records, burst 32, 1 new MAC/s), with a file as in production.
    const store = await SessionStore.open({ file: path.join(dir, 'sessions.json') });
    const server = await start({ host: '127.0.0.1', port: 0, filesDir: dir, sessions: store, log });
    const known = randomMac();
    await createPxeActivities({ sessions: store, log }).prepareBoot({ host: { namespace: kube.namespace, name: 'known' }, mac: known, mode: 'disk' });
    const reporter = startDiscoveryReporter({ kc: kube.kc, sessions: store, intervalMs: 200, maxServers, log });
    const latencies: number[] = [];
    let stop = false;
    const probe = (async () => {
      while (!stop) {
        const t0 = Date.now();
        const res = await request(server.url + PXE_PATHS.macScript(known));
        await res.body.text();
        expect(res.statusCode).toBe(200);
        latencies.push(Date.now() - t0);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      const started = Date.now();
      const total = 20_000;
      let next = 0;
      const statuses = new Map<number, number>();
      await Promise.all(Array.from({ length: 32 }, async () => {
        while (next < total && Date.now() - started < 120_000) {
          next++;
          const m = randomMac();
          flooded.push(m);
          const res = await request(server.url + PXE_PATHS.macScript(m));
          await res.body.text();
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        }
      }));
      const floodMs = Date.now() - started;
      expect(next).toBe(total);
      expect([...statuses]).toEqual([[404, total]]);
      await reporter.syncOnce();
      await reporter.syncOnce();
      stop = true;
      await probe;
      const list = (await api.listClusterCustomObject({ ...SERVER_RESOURCE, labelSelector: `${DISCOVERY_KEYS.discoveredLabel}=true` })) as { items: ServerObject[] };
      const floodSet = new Set(flooded);
      const mine = list.items.filter((s) => floodSet.has(s.metadata.annotations?.[DISCOVERY_KEYS.mac] ?? ''));
      const stats = store.discovery.stats();
      console.log(`discovery flood: ${total} MACs in ${floodMs} ms; records ${stats.records}, dropped by cap ${stats.droppedCap}, by rate ${stats.droppedRate}; discovered Servers ${list.items.length} (${mine.length} from the flood, cap ${maxServers}); probe latency max ${Math.max(...latencies)} ms over ${latencies.length} probes`);
      expect(list.items.length).toBeLessThanOrEqual(maxServers);
      // Negative control: the reporter did report flood MACs, up to the cap.
      expect(mine.length).toBeGreaterThan(0);
      expect(stats.records).toBeLessThanOrEqual(256);
      expect(stats.records + stats.droppedCap + stats.droppedRate).toBe(total);
      expect(latencies.length).toBeGreaterThan(3);
      expect(Math.max(...latencies)).toBeLessThan(2_000);
    } finally {
      stop = true;
      await probe.catch(() => undefined);
      await reporter.stop();
      await server.stop();
      await store.flush();
    }
  }, 180_000);
});
