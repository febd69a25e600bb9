import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiextensionsV1Api, CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { CRD_FIELD_MANAGER, CRD_OWNER_LABEL } from '../api/crd-ownership';
import { IRONFLOW_OWNED_CRDS } from '../api/crd-set';
import { projectRoot } from '../api/project-root';
import { loadUpstreamIndex, needsConversion, servesPath, upstreamCrd, upstreamWebhookConfigurations, upstreamWebhookPaths, type WebhookEndpoint } from './upstream-crds';

/** Folder of Ironflow's CRD manifests (api/crds), from source, dist/ or a bench build. */
/**
 * How long a freshly applied CRD may take to be Established. Fifty upstream CRDs
 * on a busy 2-core machine took over 30 s in the test suite; a plane should wait,
 * not fail its start.
 */
const ESTABLISH_TIMEOUT_MS = 180_000;

export function crdDirectory(): string {
  return join(projectRoot(__dirname), 'api', 'crds');
}

/**
 * Ironflow's own hand-written CRDs (api/crds/*.yaml): those named in `owned`,
 * and any whose name upstream's index does not have.
 */
function ownedCrds(dir: string, owned: readonly string[], upstreamNames: ReadonlySet<string>): V1CustomResourceDefinition[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .flatMap((f) =>
      parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((doc) => {
        if (doc.errors.length > 0) throw new Error(`${join(dir, f)}: ${doc.errors[0]?.message}`);
        return doc.toJS() as V1CustomResourceDefinition;
      }),
    )
    .filter((d) => d?.kind === 'CustomResourceDefinition' && (owned.includes(d.metadata?.name ?? '') || !upstreamNames.has(d.metadata?.name ?? '')));
}

/**
 * Every CRD Ironflow installs: upstream's (api/crds/upstream) for every kind it
 * does not own, its own for the kinds in IRONFLOW_OWNED_CRDS. With `webhooks`,
 * multi-version CRDs convert through that server. `owned` overrides the list
 * of kinds installed from Ironflow's own CRDs (a test's reference server
 * passes [] to hold upstream's CRDs only).
 */
export function loadCrds(dir = crdDirectory(), opts: { webhooks?: WebhookEndpoint; owned?: readonly string[] } = {}): V1CustomResourceDefinition[] {
  const owned = opts.owned ?? IRONFLOW_OWNED_CRDS;
  const upstreamDir = join(dir, 'upstream');
  const index = loadUpstreamIndex(upstreamDir);
  const upstream = index.crds.filter((e) => !owned.includes(e.name ?? '')).map((e) => upstreamCrd(upstreamDir, e, opts.webhooks));
  return [...ownedCrds(dir, owned, new Set(index.crds.map((e) => e.name ?? ''))), ...upstream];
}

export interface InstallCrdsOptions {
  timeoutMs?: number;
  /** Replace CRDs another installation owns (and that differ from Ironflow's) instead of stopping. */
  overwriteForeign?: boolean;
  /** Where the CRD manifests are (tests); api/crds by default. */
  dir?: string;
  /** Notes for the operator (a foreign CRD left alone or overwritten). */
  log?: (msg: string) => void;
  /** The webhooks server multi-version CRDs convert through, and upstream's admission webhooks call (required when such a CRD is installed). */
  webhooks?: WebhookEndpoint;
  /** Kinds installed from Ironflow's own CRDs; IRONFLOW_OWNED_CRDS by default. */
  owned?: readonly string[];
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
 * installation owns is left alone when it equals Ironflow's (conversion
 * settings aside: that installation serves its own conversion webhook); when
 * it differs, nothing is applied and ForeignCrdError says what differs,
 * unless `overwriteForeign`. Then upstream's admission webhook configurations
 * are applied, pointed at `webhooks`, keeping only the webhooks that server
 * serves.
 */
export async function installCrds(kc: KubeConfig, opts: InstallCrdsOptions = {}): Promise<string[]> {
  // Applied through the generic (untyped) API: the typed CRD model would drop
  // schema keys it spells differently (`default`, `enum` become `_default`...).
  const generic = kc.makeApiClient(CustomObjectsApi);
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  const dir = opts.dir ?? crdDirectory();
  const index = loadUpstreamIndex(join(dir, 'upstream'));
  const owned = opts.owned ?? IRONFLOW_OWNED_CRDS;
  const multi = index.crds.filter((e) => needsConversion(e) && !owned.includes(e.name ?? ''));
  if (!opts.webhooks && multi.length > 0) {
    throw new Error(`${multi.length} CRDs (e.g. ${multi[0]?.name}) serve several versions and convert through Ironflow's upstream webhooks server: start it (workers/embedded/upstream-webhooks.ts) and pass its URL and CA to installCrds`);
  }
  const crds = loadCrds(dir, { webhooks: opts.webhooks, owned });
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
    const { conversion: _conversion, ...schemaAndNames } = crd.spec;
    const differences = crdDifferences(schemaAndNames, live.spec);
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

  const apply = (group: string, plural: string, body: { metadata?: { name?: string; labels?: Record<string, string> } }) =>
    generic.patchClusterCustomObject(
      { group, version: 'v1', plural, name: body.metadata?.name ?? '', body, fieldManager: CRD_FIELD_MANAGER, force: true },
      setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
    );
  // Concurrently: the kube-apiserver compiles each schema on its own (~3 MB of
  // upstream schemas); one at a time this step took several times longer.
  await Promise.all(
    toApply.map((crd) => apply('apiextensions.k8s.io', 'customresourcedefinitions', { ...crd, metadata: { ...crd.metadata, labels: { ...crd.metadata?.labels, [CRD_OWNER_LABEL.key]: CRD_OWNER_LABEL.value } } })),
  );
  const deadline = Date.now() + (opts.timeoutMs ?? ESTABLISH_TIMEOUT_MS);
  await Promise.all(
    crds.map(async (crd) => {
      const name = crd.metadata?.name ?? '';
      for (;;) {
        const live = await ext.readCustomResourceDefinition({ name });
        if (live.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) return;
        if (Date.now() > deadline) throw new Error(`CRD ${name} not Established after ${opts.timeoutMs ?? ESTABLISH_TIMEOUT_MS} ms: the kube-apiserver is overloaded or its webhook server does not answer`);
        await sleep(100);
      }
    }),
  );
  if (opts.webhooks) {
    const served = new Set<string>();
    const paths = upstreamWebhookPaths(join(dir, 'upstream'), index);
    const answers = await Promise.all(paths.map((p) => servesPath(opts.webhooks!, p)));
    paths.forEach((p, i) => answers[i] && served.add(p));
    for (const cfg of upstreamWebhookConfigurations(join(dir, 'upstream'), index, opts.webhooks, (p) => served.has(p))) {
      await apply('admissionregistration.k8s.io', cfg.kind === 'MutatingWebhookConfiguration' ? 'mutatingwebhookconfigurations' : 'validatingwebhookconfigurations', cfg);
    }
  }
  return crds.map((c) => c.metadata?.name ?? '');
}
