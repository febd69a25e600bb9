import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiextensionsV1Api, CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { IRONFLOW_OWNED_CRDS } from '../api/crd-set';
import { projectRoot } from '../api/project-root';
import { loadUpstreamIndex, needsConversion, servesPath, upstreamCrd, upstreamWebhookConfigurations, upstreamWebhookPaths, type WebhookEndpoint } from './upstream-crds';

/** Folder of Ironflow's CRD manifests (api/crds), from source, dist/ or a bench build. */
export function crdDirectory(): string {
  return join(projectRoot(__dirname), 'api', 'crds');
}

/** Ironflow's own hand-written CRDs (api/crds/*.yaml), only those named in `owned`. */
function ownedCrds(dir: string, owned: readonly string[]): V1CustomResourceDefinition[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .flatMap((f) =>
      parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((doc) => {
        if (doc.errors.length > 0) throw new Error(`${join(dir, f)}: ${doc.errors[0]?.message}`);
        return doc.toJS() as V1CustomResourceDefinition;
      }),
    )
    .filter((d) => d?.kind === 'CustomResourceDefinition' && owned.includes(d.metadata?.name ?? ''));
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
  const upstream = loadUpstreamIndex(upstreamDir)
    .crds.filter((e) => !owned.includes(e.name ?? ''))
    .map((e) => upstreamCrd(upstreamDir, e, opts.webhooks));
  return [...ownedCrds(dir, owned), ...upstream];
}

/**
 * Server-side applies every CRD (idempotent: a second run changes nothing) and
 * waits until each is Established, so a client may create objects right after;
 * then applies upstream's admission webhook configurations, pointed at
 * `webhooks`, keeping only the webhooks that server serves. Multi-version CRDs need that server for conversion, so it is
 * required whenever one is installed.
 */
export async function installCrds(kc: KubeConfig, opts: { timeoutMs?: number; webhooks?: WebhookEndpoint; owned?: readonly string[] } = {}): Promise<string[]> {
  const dir = crdDirectory();
  const index = loadUpstreamIndex(join(dir, 'upstream'));
  const multi = index.crds.filter((e) => needsConversion(e) && !(opts.owned ?? IRONFLOW_OWNED_CRDS).includes(e.name ?? ''));
  if (!opts.webhooks && multi.length > 0) {
    throw new Error(`${multi.length} CRDs (e.g. ${multi[0]?.name}) serve several versions and convert through Ironflow's upstream webhooks server: start it (workers/embedded/upstream-webhooks.ts) and pass its URL and CA to installCrds`);
  }
  // Applied through the generic (untyped) API: the typed CRD model would drop
  // schema keys it spells differently (`default`, `enum` become `_default`...).
  const generic = kc.makeApiClient(CustomObjectsApi);
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  const crds = loadCrds(dir, { webhooks: opts.webhooks, owned: opts.owned });
  const apply = (group: string, plural: string, body: { metadata?: { name?: string } }) =>
    generic.patchClusterCustomObject(
      { group, version: 'v1', plural, name: body.metadata?.name ?? '', body, fieldManager: 'ironflow', force: true },
      setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
    );
  // Concurrently: the kube-apiserver compiles each schema on its own (~3 MB of
  // upstream schemas); one at a time this step took several times longer.
  await Promise.all(crds.map((crd) => apply('apiextensions.k8s.io', 'customresourcedefinitions', crd)));
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  await Promise.all(
    crds.map(async (crd) => {
      const name = crd.metadata?.name ?? '';
      for (;;) {
        const live = await ext.readCustomResourceDefinition({ name });
        if (live.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) return;
        if (Date.now() > deadline) throw new Error(`CRD ${name} not Established after ${opts.timeoutMs ?? 30_000} ms`);
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
