import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { CustomObjectsApi, type KubeConfig, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { parse, parseAllDocuments } from 'yaml';
import { CONVERSION_WEBHOOK_PATH } from '../api/crd-set';

/** One file of api/crds/upstream/index.json (written by scripts/upstream-api/gen-crds). */
export interface UpstreamIndexEntry {
  file: string;
  name?: string;
  kind?: string;
  /** `module@version path` or `owner/repo@commit path`. */
  source: string;
  /** Git blob id of the file's bytes: equal to upstream's at the pinned commit. */
  gitBlob: string;
  /** Labels upstream's kustomization adds (Cluster API contract labels). */
  labels?: Record<string, string>;
  served?: string[];
  storage?: string;
}

export interface UpstreamIndex {
  crds: UpstreamIndexEntry[];
  webhooks: UpstreamIndexEntry[];
}

/** Where Ironflow's webhooks server listens and the CA the kube-apiserver must trust for it. */
export interface WebhookEndpoint {
  url: string;
  caPem: string;
}

/** The index of `dir` (api/crds/upstream); empty when the folder has none (a test's own CRD folder). */
export function loadUpstreamIndex(dir: string): UpstreamIndex {
  if (!existsSync(join(dir, 'index.json'))) return { crds: [], webhooks: [] };
  return JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as UpstreamIndex;
}

/**
 * Upstream's CRD as its release installs it: the published base file plus what
 * upstream's kustomization adds, namely its labels and, for a CRD that serves
 * more than one version, `spec.conversion` through a webhook (upstream's
 * `webhook_in_*` patches; the URL and CA are this plane's). Single-version
 * CRDs keep `conversion: None`: the apiserver never calls a webhook for them.
 */
export function upstreamCrd(dir: string, entry: UpstreamIndexEntry, webhooks?: WebhookEndpoint): V1CustomResourceDefinition {
  const crd = parse(readFileSync(join(dir, entry.file), 'utf8')) as V1CustomResourceDefinition;
  if (entry.labels) crd.metadata = { ...crd.metadata, labels: { ...crd.metadata?.labels, ...entry.labels } };
  if ((entry.served?.length ?? 0) > 1 && webhooks) {
    crd.spec.conversion = {
      strategy: 'Webhook',
      webhook: {
        conversionReviewVersions: ['v1'],
        clientConfig: { url: `${webhooks.url}${CONVERSION_WEBHOOK_PATH}`, caBundle: Buffer.from(webhooks.caPem).toString('base64') },
      },
    };
  }
  return crd;
}

/** True when the CRD serves several versions, so reading it in another version needs the conversion webhook. */
export function needsConversion(entry: UpstreamIndexEntry): boolean {
  return (entry.served?.length ?? 0) > 1;
}

interface WebhookConfiguration {
  apiVersion: string;
  kind: 'MutatingWebhookConfiguration' | 'ValidatingWebhookConfiguration';
  metadata: { name: string; labels?: Record<string, string> };
  webhooks: Array<{ name: string; clientConfig: { service?: { path?: string }; url?: string; caBundle?: string } } & Record<string, unknown>>;
}

/**
 * Upstream's admission webhook configurations (config/webhook/manifests.yaml
 * of Cluster API core, kubeadm bootstrap and kubeadm control plane) pointed at
 * this plane's webhooks server: each `clientConfig.service` (an in-cluster
 * Service upstream's kustomize fills in) becomes the loopback URL with the same
 * path, plus the CA. Names get the file's prefix, as upstream's kustomize
 * namePrefix does, so the three files' configurations do not overwrite each other.
 */
export function upstreamWebhookConfigurations(dir: string, index: UpstreamIndex, webhooks: WebhookEndpoint, served: (path: string) => boolean = () => true): WebhookConfiguration[] {
  const caBundle = Buffer.from(webhooks.caPem).toString('base64');
  return index.webhooks.flatMap((entry) =>
    parseAllDocuments(readFileSync(join(dir, entry.file), 'utf8'))
      .map((d) => d.toJS() as WebhookConfiguration | null)
      .filter((d): d is WebhookConfiguration => !!d && (d.kind === 'MutatingWebhookConfiguration' || d.kind === 'ValidatingWebhookConfiguration'))
      .map((cfg) => ({
        ...cfg,
        metadata: { name: `ironflow-${entry.file.replace(/^webhooks_/, '').replace(/\.yaml$/, '')}-${cfg.metadata.name}`, labels: { 'app.kubernetes.io/managed-by': 'ironflow' } },
        webhooks: cfg.webhooks
          .filter((w) => served(w.clientConfig.service?.path ?? ''))
          .map((w) => {
            const path = w.clientConfig.service?.path;
            if (!path) throw new Error(`${entry.file}: webhook ${w.name} has no clientConfig.service.path to serve`);
            return { ...w, clientConfig: { url: `${webhooks.url}${path}`, caBundle } };
          }),
      }))
      .filter((cfg) => cfg.webhooks.length > 0),
  );
}

/** Every clientConfig path the upstream webhook configurations name. */
export function upstreamWebhookPaths(dir: string, index: UpstreamIndex): string[] {
  const probe: WebhookEndpoint = { url: '', caPem: '' };
  return upstreamWebhookConfigurations(dir, index, probe).flatMap((c) => c.webhooks.map((w) => w.clientConfig.url ?? ''));
}

/**
 * Whether the webhooks server serves `path`: an unregistered path answers 404
 * from the server's mux, a registered admission handler answers anything else
 * to an empty review. Used to leave out the configuration entries of webhooks
 * Ironflow does not serve (e.g. CAPM3's Metal3Data), which would otherwise
 * make every write of that kind fail (failurePolicy: Fail).
 */
export function servesPath(webhooks: WebhookEndpoint, path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const req = request(`${webhooks.url}${path}`, { method: 'POST', ca: webhooks.caPem, headers: { 'content-type': 'application/json' }, timeout: 5_000 }, (res) => {
      res.resume();
      resolve(res.statusCode !== 404);
    });
    req.on('timeout', () => req.destroy(new Error(`webhooks server ${webhooks.url}: no answer for ${path}`)));
    req.on('error', reject);
    req.end('{}');
  });
}

/**
 * The webhooks server the cluster's CRDs already convert through, if it
 * answers: read from Cluster API's Cluster CRD (`spec.conversion.webhook`) and
 * probed on /healthz with the CA the CRD trusts. A plane joining a cluster
 * where another Ironflow process already serves the webhooks reuses them
 * instead of repointing that installation's CRDs at itself.
 */
export async function liveWebhooks(kc: KubeConfig): Promise<WebhookEndpoint | undefined> {
  const generic = kc.makeApiClient(CustomObjectsApi);
  const crd = (await generic
    .getClusterCustomObject({ group: 'apiextensions.k8s.io', version: 'v1', plural: 'customresourcedefinitions', name: 'clusters.cluster.x-k8s.io' })
    .catch(() => undefined)) as { spec?: { conversion?: { webhook?: { clientConfig?: { url?: string; caBundle?: string } } } } } | undefined;
  const cfg = crd?.spec?.conversion?.webhook?.clientConfig;
  if (!cfg?.url?.endsWith(CONVERSION_WEBHOOK_PATH) || !cfg.caBundle) return undefined;
  const endpoint = { url: cfg.url.slice(0, -CONVERSION_WEBHOOK_PATH.length), caPem: Buffer.from(cfg.caBundle, 'base64').toString() };
  const ok = await new Promise<boolean>((resolve) => {
    const req = request(`${endpoint.url}/healthz`, { ca: endpoint.caPem, timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
  return ok ? endpoint : undefined;
}
