import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiextensionsV1Api, CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { CRD_FIELD_MANAGER, CRD_OWNER_LABEL } from '../api/crd-ownership';
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

export interface InstallCrdsOptions {
  timeoutMs?: number;
  /** Replace CRDs another installation owns (and that differ from Ironflow's) instead of stopping. */
  overwriteForeign?: boolean;
  /** Where the CRD manifests are (tests); api/crds by default. */
  dir?: string;
  /** Notes for the operator (a foreign CRD left alone or overwritten). */
  log?: (msg: string) => void;
}

/** A CRD of another installation that differs from Ironflow's. */
export interface ForeignCrd {
  name: string;
  /** Who installed it, as far as the object tells (labels, field managers). */
  owner: string;
  differences: string[];
}

/** Raised before anything is applied when CRDs of another installation differ from Ironflow's. */
export class ForeignCrdError extends Error {
  constructor(readonly conflicts: ForeignCrd[]) {
    super(
      `${conflicts.length} CRD(s) on this cluster belong to another installation and differ from Ironflow's; nothing was changed:\n` +
        conflicts.map((c) => `  - ${c.name} (installed by ${c.owner}):\n${c.differences.map((d) => `      ${d}`).join('\n')}`).join('\n') +
        `\nIronflow works with the CRDs as it ships them. Point it at a cluster without these, or let it replace them ` +
        `(--overwrite-foreign-crds, IRONFLOW_OVERWRITE_FOREIGN_CRDS=yes) if that installation is no longer in use.`,
    );
  }
}

type Json = unknown;
const MAX_DIFFS = 8;
const show = (v: Json) => {
  const s = JSON.stringify(v);
  return s === undefined ? 'nothing' : s.length > 60 ? `${s.slice(0, 57)}...` : s;
};

/**
 * What the installed spec lacks or has otherwise than Ironflow's. Fields the
 * server defaults (present only in the installed copy) are not differences,
 * except schema properties and served versions, which change what objects
 * the cluster accepts.
 */
export function crdDifferences(desired: Json, live: Json, path = 'spec', out: string[] = []): string[] {
  if (out.length >= MAX_DIFFS) return out;
  if (Array.isArray(desired)) {
    if (!Array.isArray(live)) {
      out.push(`${path}: Ironflow's is a list, installed is ${show(live)}`);
      return out;
    }
    const named = desired.every((d) => d && typeof d === 'object' && 'name' in d);
    if (named) {
      const liveByName = new Map(live.map((l) => [(l as { name?: string }).name, l]));
      for (const d of desired) {
        const n = (d as { name: string }).name;
        if (!liveByName.has(n)) out.push(`${path}[${n}]: missing in the installed CRD`);
        else crdDifferences(d, liveByName.get(n), `${path}[${n}]`, out);
      }
      const desiredNames = new Set<unknown>(desired.map((d) => (d as { name: string }).name));
      for (const l of live) {
        const n = (l as { name?: string }).name;
        if (!desiredNames.has(n)) out.push(`${path}[${n}]: only in the installed CRD`);
      }
      return out;
    }
    if (desired.length !== live.length) {
      out.push(`${path}: Ironflow's has ${desired.length} items, installed ${live.length}`);
      return out;
    }
    desired.forEach((d, i) => crdDifferences(d, live[i], `${path}[${i}]`, out));
    return out;
  }
  if (desired && typeof desired === 'object') {
    if (!live || typeof live !== 'object' || Array.isArray(live)) {
      out.push(`${path}: Ironflow's is an object, installed is ${show(live)}`);
      return out;
    }
    const l = live as Record<string, Json>;
    for (const [k, v] of Object.entries(desired as Record<string, Json>)) {
      if (!(k in l)) out.push(`${path}.${k}: missing in the installed CRD`);
      else crdDifferences(v, l[k], `${path}.${k}`, out);
    }
    if (path.endsWith('.properties')) {
      for (const k of Object.keys(l)) if (!(k in (desired as object))) out.push(`${path}.${k}: only in the installed CRD`);
    }
    return out;
  }
  if (desired !== live) out.push(`${path}: Ironflow's ${show(desired)}, installed ${show(live)}`);
  return out;
}

/** Who wrote the CRD's spec and metadata (the API server's own status writes are nobody's installation). */
function writers(live: V1CustomResourceDefinition): string[] {
  const fields = (live.metadata?.managedFields ?? []).filter((m) => m.subresource !== 'status' && m.manager !== 'kube-apiserver');
  return [...new Set(fields.map((m) => m.manager).filter((m): m is string => !!m))];
}

/** Ironflow's: labelled, or applied only by Ironflow's field manager (versions before the label). */
function installedByIronflow(live: V1CustomResourceDefinition): boolean {
  if (live.metadata?.labels?.[CRD_OWNER_LABEL.key] === CRD_OWNER_LABEL.value) return true;
  const w = writers(live);
  return w.length > 0 && w.every((m) => m === CRD_FIELD_MANAGER);
}

function ownerOf(live: V1CustomResourceDefinition): string {
  const labels = live.metadata?.labels ?? {};
  const hints = Object.entries(labels)
    .filter(([k]) => /managed-by|clusterctl|part-of|provider/.test(k))
    .map(([k, v]) => (v ? `${k}=${v}` : k));
  const managers = writers(live);
  return [...hints, ...(managers.length ? [`field managers ${managers.join(', ')}`] : [])].join('; ') || 'an unknown installer';
}

/**
 * Server-side applies every CRD Ironflow owns (idempotent: a second run
 * changes nothing), labelled as Ironflow's, and waits until each is
 * Established, so a client may create objects right after. A CRD another
 * installation owns is left alone when it equals Ironflow's; when it
 * differs, nothing is applied and ForeignCrdError says what differs,
 * unless `overwriteForeign`.
 */
export async function installCrds(kc: KubeConfig, opts: InstallCrdsOptions = {}): Promise<string[]> {
  // Applied through the generic (untyped) API: the typed CRD model would drop
  // schema keys it spells differently (`default`, `enum` become `_default`...).
  const generic = kc.makeApiClient(CustomObjectsApi);
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  const crds = loadCrds(opts.dir);
  const toApply: V1CustomResourceDefinition[] = [];
  const conflicts: ForeignCrd[] = [];
  for (const crd of crds) {
    const name = crd.metadata?.name ?? '';
    let live: V1CustomResourceDefinition | undefined;
    try {
      live = (await generic.getClusterCustomObject({ group: 'apiextensions.k8s.io', version: 'v1', plural: 'customresourcedefinitions', name })) as V1CustomResourceDefinition;
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
    }
    if (!live || installedByIronflow(live)) {
      toApply.push(crd);
      continue;
    }
    const differences = crdDifferences(crd.spec, live.spec);
    if (differences.length === 0) {
      opts.log?.(`CRD ${name} is installed by ${ownerOf(live)} and equals Ironflow's: left as it is`);
    } else if (opts.overwriteForeign) {
      opts.log?.(`CRD ${name} is installed by ${ownerOf(live)} and differs (${differences[0]}): overwriting it (--overwrite-foreign-crds)`);
      toApply.push(crd);
    } else {
      conflicts.push({ name, owner: ownerOf(live), differences });
    }
  }
  if (conflicts.length > 0) throw new ForeignCrdError(conflicts);

  for (const crd of toApply) {
    const body = { ...crd, metadata: { ...crd.metadata, labels: { ...crd.metadata?.labels, [CRD_OWNER_LABEL.key]: CRD_OWNER_LABEL.value } } };
    await generic.patchClusterCustomObject(
      { group: 'apiextensions.k8s.io', version: 'v1', plural: 'customresourcedefinitions', name: crd.metadata?.name ?? '', body, fieldManager: CRD_FIELD_MANAGER, force: true },
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
