/**
 * The host workflow's writes to its BareMetalHost: status after every
 * transition, and the release of Ironflow's finalizer once the hardware is
 * safe. Both are idempotent, so an activity retry after a crash is harmless.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { HOST_FINALIZER, type HostRef, type HostStatus } from '../../api/host';

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

export function createHostObjectActivities(deps: { kc: KubeConfig }) {
  const api = deps.kc.makeApiClient(CustomObjectsApi);
  return {
    async writeHostStatus({ host, status }: { host: HostRef; status: HostStatus }): Promise<void> {
      try {
        await api.patchNamespacedCustomObjectStatus(
          { ...BMH, namespace: host.namespace, name: host.name, body: { status: statusMergePatch(status) } },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
      } catch (err) {
        // The object is gone (deleted without our finalizer, e.g. forced): nothing to write to.
        if (codeOf(err) === 404) return;
        throw err;
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
