/**
 * Reports MACs that PXE-booted without being registered as Sidero-style
 * Server objects (metal.sidero.dev/v1alpha2), so an operator sees them with
 * `kubectl get servers` and can decide what they are.
 *
 * Every Server this creates has `spec.accepted: false`: Sidero's accept gate.
 * Nothing in Ironflow acts on an unaccepted Server, and this reporter never
 * writes `spec` again after the create, so an operator's accept (or a
 * cordon, a BMC, anything else they add) is never overwritten. Later boots of
 * the same MAC only refresh annotations (last seen, boot attempts) with a
 * JSON merge patch that names nothing but those annotations.
 *
 * Servers are cluster-scoped (api/crds/upstream/metal.sidero.dev_servers.yaml, as in
 * Sidero), so there is no namespace to choose. Sidero names a Server by the
 * machine's SMBIOS UUID; a PXE request carries only the MAC, so the name is
 * derived from it: 52:54:00:12:34:56 -> mac-52-54-00-12-34-56.
 *
 * A MAC that is registered to a BareMetalHost (a boot or a claim in the
 * session store) never gets a Server; one created before it was registered is
 * left as it is for the operator to delete.
 *
 * Bounded (issue 13: 20k PXE requests from random MACs made 5,025 Servers):
 * the session store keeps at most a capped number of unknown MACs and takes
 * new ones at a limited rate (activities/agent/discovery-book.ts), and this
 * reporter creates no Server while `maxServers` (default 256) discovered
 * Servers exist (counted on the API server each sync, label
 * ironflow.dev/discovered=true). MACs beyond either bound are logged and
 * counted, never stored or created; the operator makes room by deleting or
 * registering Servers.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { normalizeMac } from '../api/pxe';
import type { DiscoveredMac } from '../activities/agent/session-state';
import type { SessionStore } from '../activities/agent/session-store';

export const SERVER_RESOURCE = { group: 'metal.sidero.dev', version: 'v1alpha2', plural: 'servers' } as const;

/** Labels (selectable) and annotations (the boot record) on a discovered Server. */
export const DISCOVERY_KEYS = {
  /** Label "true" on every Server this reporter created: `kubectl get servers -l ironflow.dev/discovered=true`. */
  discoveredLabel: 'ironflow.dev/discovered',
  /** Label with the MAC in dashed form (label values may not contain ':'). */
  macLabel: 'ironflow.dev/mac',
  mac: 'ironflow.dev/mac',
  firstSeen: 'ironflow.dev/first-seen',
  lastSeen: 'ironflow.dev/last-seen',
  sourceIp: 'ironflow.dev/source-ip',
  source: 'ironflow.dev/discovery-source',
  bootAttempts: 'ironflow.dev/boot-attempts',
} as const;

export interface DiscoveryReporterOptions {
  kc: KubeConfig;
  sessions: Pick<SessionStore, 'discovered' | 'isRegisteredMac' | 'discovery'>;
  /** Most discovered Servers that may exist (created by any reporter); default 256. */
  maxServers?: number;
  /** Time between syncs; default 2000 ms. */
  intervalMs?: number;
  /**
   * Bound on API writes (creates + annotation patches) per sync, default 100:
   * a flood of spoofed MACs turns into a trickle of writes, most recently
   * seen MACs first, not a burst against the apiserver.
   */
  maxWritesPerSync?: number;
  log: Logger;
}

export interface DiscoveryReporter {
  /** One sync now (waits for a sync already under way first); resolves to the number of Servers created. */
  syncOnce(): Promise<number>;
  /** Stops the timer and waits for a sync under way. */
  stop(): Promise<void>;
}

/** 52:54:00:12:34:56 (any spelling) -> 52-54-00-12-34-56. */
export function dashedMac(mac: string): string {
  return normalizeMac(mac).replace(/:/g, '-');
}

/** Name of the Server reported for a MAC: mac-52-54-00-12-34-56. */
export function serverNameForMac(mac: string): string {
  return `mac-${dashedMac(mac)}`;
}

function annotationsFor(d: DiscoveredMac): Record<string, string> {
  return {
    [DISCOVERY_KEYS.mac]: d.mac,
    [DISCOVERY_KEYS.firstSeen]: d.firstSeen,
    [DISCOVERY_KEYS.lastSeen]: d.lastSeen,
    [DISCOVERY_KEYS.source]: d.source,
    [DISCOVERY_KEYS.bootAttempts]: String(d.count),
    ...(d.sourceIp ? { [DISCOVERY_KEYS.sourceIp]: d.sourceIp } : {}),
  };
}

/** The Server created for a newly seen MAC. */
export function discoveredServer(d: DiscoveredMac): Record<string, unknown> {
  return {
    apiVersion: `${SERVER_RESOURCE.group}/${SERVER_RESOURCE.version}`,
    kind: 'Server',
    metadata: {
      name: serverNameForMac(d.mac),
      labels: { [DISCOVERY_KEYS.discoveredLabel]: 'true', [DISCOVERY_KEYS.macLabel]: dashedMac(d.mac) },
      annotations: annotationsFor(d),
    },
    spec: { accepted: false },
  };
}

const statusCode = (err: unknown): number | undefined => (err as { code?: number }).code;

export function startDiscoveryReporter(o: DiscoveryReporterOptions): DiscoveryReporter {
  const api = o.kc.makeApiClient(CustomObjectsApi);
  const log = o.log.child({ component: 'discovery' });
  const intervalMs = o.intervalMs ?? 2000;
  const maxWrites = o.maxWritesPerSync ?? 100;
  const maxServers = o.maxServers ?? 256;
  let lastDropped = { droppedCap: 0, droppedRate: 0 };
  let capWarnedAt = 0;
  // What the Server of each MAC last showed (count + lastSeen), so an idle
  // MAC costs no API call. Empty after a restart: the first sync then creates
  // (409 = already there) and refreshes each MAC once.
  const written = new Map<string, string>();
  const stamp = (d: DiscoveredMac) => `${d.count}@${d.lastSeen}`;

  const patchAnnotations = (d: DiscoveredMac) =>
    api.patchClusterCustomObject(
      { ...SERVER_RESOURCE, name: serverNameForMac(d.mac), body: { metadata: { annotations: annotationsFor(d) } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );

  /** Creates the Server, or refreshes its annotations if it exists; true if created. */
  async function create(d: DiscoveredMac): Promise<boolean> {
    try {
      await api.createClusterCustomObject({ ...SERVER_RESOURCE, body: discoveredServer(d) });
      log.info({ mac: d.mac, server: serverNameForMac(d.mac), sourceIp: d.sourceIp, count: d.count }, `unknown MAC ${d.mac} reported as Server ${serverNameForMac(d.mac)} (accepted: false)`);
      return true;
    } catch (err) {
      if (statusCode(err) !== 409) throw err;
      await patchAnnotations(d);
      return false;
    }
  }

  /**
   * Discovered Servers on the API server now (bounded read: cap + 1 is enough
   * to know). A 429 (an API server still filling its cache) is waited out
   * briefly; any other failure fails the sync, which creates nothing then.
   */
  async function countServers(): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      try {
        const list = (await api.listClusterCustomObject({ ...SERVER_RESOURCE, labelSelector: `${DISCOVERY_KEYS.discoveredLabel}=true`, limit: maxServers + 1 })) as { items: unknown[]; metadata?: { remainingItemCount?: number } };
        return list.items.length + (list.metadata?.remainingItemCount ?? 0);
      } catch (err) {
        if (statusCode(err) !== 429 || attempt >= 5) throw err;
        await sleep(500 * attempt);
      }
    }
  }

  async function sync(): Promise<number> {
    let writes = 0;
    let created = 0;
    const stats = o.sessions.discovery.stats();
    if (stats.droppedCap !== lastDropped.droppedCap || stats.droppedRate !== lastDropped.droppedRate) {
      log.warn(
        { droppedByCap: stats.droppedCap - lastDropped.droppedCap, droppedByRate: stats.droppedRate - lastDropped.droppedRate, totalDropped: stats.droppedCap + stats.droppedRate, recorded: stats.records, limits: o.sessions.discovery.limits },
        'unknown MACs not recorded (discovery cap or rate limit): a flood of made-up MACs, or more new machines than the limits allow',
      );
      lastDropped = { droppedCap: stats.droppedCap, droppedRate: stats.droppedRate };
    }
    const pending = o.sessions.discovered().filter((d) => !o.sessions.isRegisteredMac(d.mac) && written.get(d.mac) !== stamp(d));
    if (!pending.length) return 0;
    let servers = pending.some((d) => !written.has(d.mac)) ? await countServers() : 0;
    let skippedForCap = 0;
    // Most recently seen first (SessionStore.discovered), so the bounds favour live machines.
    for (const d of pending) {
      if (writes >= maxWrites) {
        log.warn({ maxWritesPerSync: maxWrites }, `more than ${maxWrites} discovered MACs to report; the rest wait for the next sync`);
        break;
      }
      // Registered between the snapshot and now: it belongs to a BareMetalHost, not to discovery.
      if (o.sessions.isRegisteredMac(d.mac)) continue;
      if (!written.has(d.mac) && servers >= maxServers) {
        skippedForCap++;
        continue;
      }
      writes++;
      try {
        if (!written.has(d.mac)) {
          if (await create(d)) {
            created++;
            servers++;
          }
        } else {
          try {
            await patchAnnotations(d);
          } catch (err) {
            // Deleted by the operator while the machine keeps PXE-booting: report it again, as Sidero would.
            if (statusCode(err) !== 404) throw err;
            if (await create(d)) created++;
          }
        }
        written.set(d.mac, stamp(d));
      } catch (err) {
        const code = statusCode(err);
        const hint = code === 404 ? ': is the metal.sidero.dev Server CRD installed (api/crds/upstream/metal.sidero.dev_servers.yaml)?' : '';
        log.warn({ err, mac: d.mac, server: serverNameForMac(d.mac), status: code }, `could not report discovered MAC ${d.mac} as Server ${serverNameForMac(d.mac)}${hint}`);
      }
    }
    if (skippedForCap && Date.now() - capWarnedAt > 60_000) {
      capWarnedAt = Date.now();
      log.warn({ skipped: skippedForCap, maxServers }, `${skippedForCap} discovered MACs not reported: ${maxServers} discovered Servers exist (the cap); delete or register some (kubectl get servers -l ${DISCOVERY_KEYS.discoveredLabel}=true)`);
    }
    return created;
  }

  // One sync at a time: the timer and syncOnce() queue behind each other.
  let running: Promise<number> = Promise.resolve(0);
  const queueSync = () => {
    const next = running.catch(() => 0).then(sync);
    running = next;
    return next;
  };

  const abort = new AbortController();
  const loop = (async () => {
    while (!abort.signal.aborted) {
      try {
        await sleep(intervalMs, undefined, { signal: abort.signal });
      } catch {
        return; // aborted by stop()
      }
      await queueSync().catch((err: unknown) => log.error({ err }, 'discovery sync failed'));
    }
  })();

  return {
    syncOnce: queueSync,
    stop: async () => {
      abort.abort();
      await loop;
      await running.catch(() => undefined);
    },
  };
}
