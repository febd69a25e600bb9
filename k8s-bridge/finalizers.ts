/**
 * Finalizers on watched objects. The bridge adds HOST_FINALIZER on first sight
 * and never removes it; the host workflow's activity calls removeFinalizer
 * once the hardware is safe (powered off, erased). Both use a JSON merge patch
 * that carries metadata.resourceVersion, so the API server applies it only to
 * the version we read (409 otherwise) and never drops another controller's
 * finalizer added meanwhile.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { HOST_FINALIZER, type HostRef } from '../api/host';
import { makeKeepAliveApiClient } from './kube-client';
import type { KubeObject, ResourceRef } from './watch';

export const BAREMETALHOST_RESOURCE: ResourceRef = { group: 'metal3.io', version: 'v1alpha1', plural: 'baremetalhosts' };

const statusOf = (err: unknown): number | undefined => (err as { code?: number }).code;

/** One keep-alive API client per KubeConfig (see kube-client.ts). */
const clients = new WeakMap<KubeConfig, CustomObjectsApi>();
function customApi(kc: KubeConfig): CustomObjectsApi {
  let api = clients.get(kc);
  if (!api) clients.set(kc, (api = makeKeepAliveApiClient(kc, CustomObjectsApi)));
  return api;
}

interface ObjectWithFinalizers extends KubeObject {
  metadata: KubeObject['metadata'] & { finalizers?: string[] };
}

async function patchFinalizers(kc: KubeConfig, resource: ResourceRef, ref: HostRef, resourceVersion: string, finalizers: string[]): Promise<ObjectWithFinalizers> {
  return (await customApi(kc).patchNamespacedCustomObject(
    { ...resource, namespace: ref.namespace, name: ref.name, body: { metadata: { finalizers, resourceVersion } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  )) as ObjectWithFinalizers;
}

/**
 * Adds `finalizer` to the object as read (`current`). Returns the updated
 * object, or undefined when the object changed or vanished since it was read
 * (the watch will deliver the newer version, and the caller tries again then).
 */
export async function addFinalizer(
  kc: KubeConfig,
  current: ObjectWithFinalizers,
  finalizer: string = HOST_FINALIZER,
  resource: ResourceRef = BAREMETALHOST_RESOURCE,
): Promise<ObjectWithFinalizers | undefined> {
  const existing = current.metadata.finalizers ?? [];
  if (existing.includes(finalizer)) return current;
  const ref = { namespace: current.metadata.namespace ?? '', name: current.metadata.name ?? '' };
  try {
    return await patchFinalizers(kc, resource, ref, current.metadata.resourceVersion ?? '', [...existing, finalizer]);
  } catch (err) {
    if (statusOf(err) === 409 || statusOf(err) === 404) return undefined;
    throw new Error(`could not add finalizer ${finalizer} to ${resource.plural}.${resource.group} ${ref.namespace}/${ref.name}: ${(err as Error).message.split('\n')[0]}`);
  }
}

/**
 * Removes `finalizer` (idempotent: 'absent' when it is not there, 'gone' when
 * the object no longer exists). Retries a few times on write conflicts, each
 * time re-reading the object so other finalizers are kept.
 */
export async function removeFinalizer(
  kc: KubeConfig,
  ref: HostRef,
  finalizer: string = HOST_FINALIZER,
  resource: ResourceRef = BAREMETALHOST_RESOURCE,
): Promise<'removed' | 'absent' | 'gone'> {
  const api = customApi(kc);
  const what = `${resource.plural}.${resource.group} ${ref.namespace}/${ref.name}`;
  for (let attempt = 1; attempt <= 5; attempt++) {
    let current: ObjectWithFinalizers;
    try {
      current = (await api.getNamespacedCustomObject({ ...resource, namespace: ref.namespace, name: ref.name })) as ObjectWithFinalizers;
    } catch (err) {
      if (statusOf(err) === 404) return 'gone';
      throw new Error(`could not read ${what} to remove finalizer ${finalizer}: ${(err as Error).message.split('\n')[0]}`);
    }
    const existing = current.metadata.finalizers ?? [];
    if (!existing.includes(finalizer)) return 'absent';
    try {
      await patchFinalizers(kc, resource, ref, current.metadata.resourceVersion ?? '', existing.filter((f) => f !== finalizer));
      return 'removed';
    } catch (err) {
      if (statusOf(err) === 404) return 'gone';
      if (statusOf(err) !== 409) throw new Error(`could not remove finalizer ${finalizer} from ${what}: ${(err as Error).message.split('\n')[0]}`);
      await sleep(50 * attempt);
    }
  }
  throw new Error(`could not remove finalizer ${finalizer} from ${what}: it kept changing (5 write conflicts); the activity retry will try again`);
}
