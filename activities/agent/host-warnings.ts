/**
 * Warning Events on a BareMetalHost (core/v1 Event, involvedObject the BMH,
 * as BMO emits them) for what happens on the provisioning network that an
 * operator must see: a boot ended because its script was fetched twice,
 * evidence that did not match, tokens used where they do not belong.
 *
 * Anyone on that network can trigger these, so they are bounded: one Event
 * per host and reason per `minIntervalMs` (default 30 s; the next one says
 * how many were held back), at most 8 writes in flight (the rest counted and
 * logged), and the bookkeeping forgets the oldest of 4,096 host+reason pairs.
 * Messages are the plane's own sentences: never a token, never a value the
 * client sent.
 */
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { HostRef } from '../../api/host';

export type HostWarn = (host: HostRef, reason: string, message: string) => void;

export interface HostWarningsLog {
  warn(fields: Record<string, unknown>, msg: string): void;
}

export interface HostWarnings {
  warn: HostWarn;
  /** Resolves when the Event writes under way are done (tests). */
  settled(): Promise<void>;
}

const BMH = { group: 'metal3.io', version: 'v1alpha1', plural: 'baremetalhosts' } as const;

/** Throttle + log around any Event writer. */
export function boundedWarnings(
  write: ((host: HostRef, reason: string, message: string) => Promise<void>) | undefined,
  log: HostWarningsLog,
  opts: { minIntervalMs?: number; maxInFlight?: number; now?: () => number } = {},
): HostWarnings {
  const minInterval = opts.minIntervalMs ?? 30_000;
  const maxInFlight = opts.maxInFlight ?? 8;
  const now = opts.now ?? Date.now;
  const last = new Map<string, { at: number; held: number }>();
  const inFlight = new Set<Promise<void>>();
  let dropped = 0;

  const warn: HostWarn = (host, reason, message) => {
    const key = `${host.namespace}/${host.name}#${reason}`;
    const prev = last.get(key);
    if (prev && now() - prev.at < minInterval) {
      prev.held++;
      return;
    }
    last.delete(key);
    last.set(key, { at: now(), held: 0 });
    if (last.size > 4096) last.delete(last.keys().next().value!);
    const text = prev?.held ? `${message} (${prev.held} more like this in the last ${Math.round((now() - prev.at) / 1000)} s not reported)` : message;
    log.warn({ host: `${host.namespace}/${host.name}`, reason }, text);
    if (!write) return;
    if (inFlight.size >= maxInFlight) {
      dropped++;
      if (dropped % 100 === 1) log.warn({ dropped }, 'too many Warning Events in flight; some were only logged');
      return;
    }
    const p = write(host, reason, text)
      .catch((err: Error) => log.warn({ host: `${host.namespace}/${host.name}`, reason, err: err.message }, 'could not write the Warning Event'))
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  return {
    warn,
    async settled() {
      while (inFlight.size) await Promise.all(inFlight);
    },
  };
}

/** Writes the Event to the management cluster; the BMH's uid is looked up so `kubectl describe bmh` shows it. */
export function kubeEventWriter(kc: KubeConfig, component = 'ironflow-provisioning'): (host: HostRef, reason: string, message: string) => Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  let seq = 0;
  return async (host, reason, message) => {
    let uid: string | undefined;
    try {
      const bmh = (await custom.getNamespacedCustomObject({ ...BMH, namespace: host.namespace, name: host.name })) as { metadata?: { uid?: string } };
      uid = bmh.metadata?.uid;
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
    }
    const at = new Date();
    await core.createNamespacedEvent({
      namespace: host.namespace,
      body: {
        metadata: { name: `${host.name}.${at.getTime().toString(16)}${(++seq).toString(16)}`, namespace: host.namespace },
        involvedObject: { apiVersion: `${BMH.group}/${BMH.version}`, kind: 'BareMetalHost', namespace: host.namespace, name: host.name, ...(uid ? { uid } : {}) },
        type: 'Warning',
        reason,
        message: message.slice(0, 1024),
        source: { component },
        reportingComponent: component,
        firstTimestamp: at,
        lastTimestamp: at,
        count: 1,
      },
    });
  };
}
