/**
 * The host workflow's writes to its BareMetalHost: status after every
 * transition, and the release of Ironflow's finalizer once the hardware is
 * safe. Both are idempotent, so an activity retry after a crash is harmless.
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { HOST_FINALIZER, type HostEvent, type HostRef, type HostStatus } from '../../api/host';

const BMH = { group: 'metal3.io', version: 'v1alpha1', plural: 'baremetalhosts' } as const;
const codeOf = (err: unknown): number | undefined => (err as { code?: number }).code;

/**
 * The status as a JSON merge patch: a field the workflow cleared must be sent
 * as null, or the merge would keep the old value (e.g. a stale errorType).
 */
export function statusMergePatch(status: HostStatus): Record<string, unknown> {
  const p = status.provisioning;
  return {
    provisioning: {
      state: p.state,
      ID: p.ID ?? null,
      image: p.image ?? null,
      rootDeviceHints: p.rootDeviceHints ?? null,
      bootMode: p.bootMode ?? null,
    },
    operationalStatus: status.operationalStatus,
    errorType: status.errorType ?? '',
    errorMessage: status.errorMessage ?? '',
    errorCount: status.errorCount,
    poweredOn: status.poweredOn,
    hardware: status.hardware ?? null,
    hardwareProfile: status.hardwareProfile ?? null,
    lastUpdated: status.lastUpdated,
    erase: status.erase ?? null,
    lastApproval: status.lastApproval ?? null,
  };
}

/** Who emits Ironflow's events (kubectl describe shows it as "From"). */
export const EVENT_SOURCE = 'ironflow-host-controller';
/** Event messages are capped like the API server caps them (1 KiB is plenty to say what to fix). */
const MAX_EVENT_MESSAGE = 1024;

/**
 * A core/v1 Event on the BareMetalHost, as BMO records them. The name is
 * derived from the host, the status write it belongs to and the reason, so
 * an activity retried after a crash creates it once (409 = already there).
 */
export function hostEventObject(host: HostRef, uid: string | undefined, at: string, e: HostEvent) {
  const digest = createHash('sha256').update(`${host.namespace}/${host.name}/${at}/${e.reason}/${e.message}`).digest('hex').slice(0, 16);
  return {
    metadata: { name: `${host.name}.${digest}`, namespace: host.namespace },
    involvedObject: { apiVersion: `${BMH.group}/${BMH.version}`, kind: 'BareMetalHost', name: host.name, namespace: host.namespace, ...(uid ? { uid } : {}) },
    type: e.type,
    reason: e.reason,
    message: e.message.length > MAX_EVENT_MESSAGE ? `${e.message.slice(0, MAX_EVENT_MESSAGE - 3)}...` : e.message,
    source: { component: EVENT_SOURCE },
    reportingComponent: EVENT_SOURCE,
    firstTimestamp: new Date(at),
    lastTimestamp: new Date(at),
    count: 1,
  };
}

export function createHostObjectActivities(deps: { kc: KubeConfig }) {
  const api = deps.kc.makeApiClient(CustomObjectsApi);
  const core = deps.kc.makeApiClient(CoreV1Api);
  return {
    /** The status merge patch, then the events of this step (after it: an event never describes an unwritten state). */
    async writeHostStatus({ host, status, events }: { host: HostRef; status: HostStatus; events?: HostEvent[] }): Promise<void> {
      let uid: string | undefined;
      try {
        const res = (await api.patchNamespacedCustomObjectStatus(
          { ...BMH, namespace: host.namespace, name: host.name, body: { status: statusMergePatch(status) } },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        )) as { metadata?: { uid?: string } };
        uid = res.metadata?.uid;
      } catch (err) {
        // The object is gone (deleted without our finalizer, e.g. forced): nothing to write to.
        if (codeOf(err) === 404) return;
        throw err;
      }
      for (const e of events ?? []) {
        try {
          await core.createNamespacedEvent({ namespace: host.namespace, body: hostEventObject(host, uid, status.lastUpdated, e) });
        } catch (err) {
          if (codeOf(err) === 409) continue; // this activity ran before and created it
          if (codeOf(err) === 403 || codeOf(err) === 404) continue; // namespace terminating: the event has nowhere to go
          throw err;
        }
      }
    },

    /** Removes HOST_FINALIZER with a resourceVersion precondition, keeping other controllers' finalizers. */
    async releaseHost({ host }: { host: HostRef }): Promise<void> {
      for (let attempt = 1; ; attempt++) {
        let current: { metadata?: { finalizers?: string[]; resourceVersion?: string } };
        try {
          current = (await api.getNamespacedCustomObject({ ...BMH, namespace: host.namespace, name: host.name })) as typeof current;
        } catch (err) {
          if (codeOf(err) === 404) return;
          throw err;
        }
        const finalizers = current.metadata?.finalizers ?? [];
        if (!finalizers.includes(HOST_FINALIZER)) return;
        try {
          await api.patchNamespacedCustomObject(
            {
              ...BMH,
              namespace: host.namespace,
              name: host.name,
              body: { metadata: { finalizers: finalizers.filter((f) => f !== HOST_FINALIZER), resourceVersion: current.metadata?.resourceVersion } },
            },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
          );
          return;
        } catch (err) {
          if (codeOf(err) === 404) return;
          if (codeOf(err) !== 409 || attempt >= 5) throw err;
          await sleep(100 * attempt);
        }
      }
    },
  };
}
export type HostObjectActivities = ReturnType<typeof createHostObjectActivities>;
