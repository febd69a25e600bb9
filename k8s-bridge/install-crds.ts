import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiextensionsV1Api, CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { projectRoot } from '../api/project-root';

/** Folder of Ironflow's CRD manifests (api/crds), from source, dist/ or a bench build. */
export function crdDirectory(): string {
  return join(projectRoot(__dirname), 'api', 'crds');
}

export function loadCrds(dir = crdDirectory()): V1CustomResourceDefinition[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .flatMap((f) =>
      parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((doc) => {
        if (doc.errors.length > 0) throw new Error(`${join(dir, f)}: ${doc.errors[0]?.message}`);
        return doc.toJS() as V1CustomResourceDefinition;
      }),
    )
    .filter((d) => d?.kind === 'CustomResourceDefinition');
}

/**
 * Server-side applies every CRD (idempotent: a second run changes nothing) and
 * waits until each is Established, so a client may create objects right after.
 */
export async function installCrds(kc: KubeConfig, opts: { timeoutMs?: number } = {}): Promise<string[]> {
  // Applied through the generic (untyped) API: the typed CRD model would drop
  // schema keys it spells differently (`default`, `enum` become `_default`...).
  const generic = kc.makeApiClient(CustomObjectsApi);
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  const crds = loadCrds();
  for (const crd of crds) {
    await generic.patchClusterCustomObject(
      { group: 'apiextensions.k8s.io', version: 'v1', plural: 'customresourcedefinitions', name: crd.metadata?.name ?? '', body: crd, fieldManager: 'ironflow', force: true },
      setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
    );
  }
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (const crd of crds) {
    const name = crd.metadata?.name ?? '';
    for (;;) {
      const live = await ext.readCustomResourceDefinition({ name });
      if (live.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      if (Date.now() > deadline) throw new Error(`CRD ${name} not Established after ${opts.timeoutMs ?? 30_000} ms`);
      await sleep(100);
    }
  }
  return crds.map((c) => c.metadata?.name ?? '');
}
