/**
 * `kubectl apply --server-side` for manifests read from YAML: used by tests,
 * benchmarks and the CLI to put operator YAML (Metal3, Cluster API, Sidero)
 * into the cluster unchanged, so the API server's own validation is what
 * accepts or refuses it.
 */
import { readFileSync } from 'node:fs';
import { type KubeConfig, type KubernetesObject, KubernetesObjectApi, PatchStrategy } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';

export function readManifests(file: string): KubernetesObject[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]?.message}`);
      return doc.toJS() as KubernetesObject | null;
    })
    .filter((o): o is KubernetesObject => o !== null && typeof o === 'object' && typeof o.kind === 'string');
}

/** Server-side applies each object (into `namespace` when it names none), in order. */
export async function applyObjects(kc: KubeConfig, objects: KubernetesObject[], opts: { namespace?: string; fieldManager?: string } = {}): Promise<KubernetesObject[]> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const out: KubernetesObject[] = [];
  for (const o of objects) {
    const body = { ...o, metadata: { ...o.metadata, namespace: o.metadata?.namespace ?? opts.namespace } };
    out.push(await api.patch(body, undefined, undefined, opts.fieldManager ?? 'kubectl', true, PatchStrategy.ServerSideApply));
  }
  return out;
}

/** The message a user would read from kubectl for a refused object (the Status message). */
export function refusalMessage(err: unknown): string {
  const body = (err as { body?: unknown }).body;
  const parsed = typeof body === 'string' ? (() => { try { return JSON.parse(body) as { message?: string }; } catch { return { message: body }; } })() : (body as { message?: string } | undefined);
  return parsed?.message ?? (err as Error).message;
}
