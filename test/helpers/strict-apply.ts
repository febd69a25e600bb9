/**
 * Server-side apply with `fieldValidation=Strict` (what `kubectl apply
 * --server-side --validate=strict` sends), against any kube-apiserver named by
 * a kubeconfig, returning the verdict instead of throwing: tests compare the
 * verdicts of two servers object by object.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { parse } from 'yaml';

export interface Verdict {
  verdict: 'accepted' | 'rejected' | 'not served';
  status: number;
  message: string;
  /** The fields a rejection names (Status causes, or the field of a strict-decoding error), sorted. */
  fields: string[];
}

export interface ManifestObject {
  apiVersion: string;
  kind: string;
  metadata: { name?: string; namespace?: string; [k: string]: unknown };
  [k: string]: unknown;
}

interface Status {
  message?: string;
  details?: { causes?: Array<{ field?: string; message?: string }> };
}

export class KubeHttp {
  private readonly server: string;
  private readonly ca: string;
  private readonly token: string;
  private readonly resources = new Map<string, { plural: string; namespaced: boolean } | null>();

  constructor(kubeconfigPath: string) {
    const kc = parse(readFileSync(kubeconfigPath, 'utf8')) as {
      clusters: Array<{ cluster: { server: string; 'certificate-authority-data': string } }>;
      users: Array<{ user: { token: string } }>;
    };
    this.server = kc.clusters[0]!.cluster.server;
    this.ca = Buffer.from(kc.clusters[0]!.cluster['certificate-authority-data'], 'base64').toString();
    this.token = kc.users[0]!.user.token;
  }

  call(method: string, path: string, body?: string, contentType = 'application/json'): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request(`${this.server}${path}`, { method, ca: this.ca, headers: { authorization: `Bearer ${this.token}`, 'content-type': contentType, accept: 'application/json' }, timeout: 30_000 }, (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (data += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timeout`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** The plural and scope of a kind from API discovery, or null when the server does not serve it. */
  async resource(apiVersion: string, kind: string): Promise<{ plural: string; namespaced: boolean } | null> {
    const key = `${apiVersion}/${kind}`;
    if (!this.resources.has(key)) {
      const path = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
      const res = await this.call('GET', path);
      const list = res.status === 200 ? (JSON.parse(res.body) as { resources: Array<{ name: string; kind: string; namespaced: boolean }> }).resources : [];
      for (const r of list) if (!r.name.includes('/')) this.resources.set(`${apiVersion}/${r.kind}`, { plural: r.name, namespaced: r.namespaced });
      if (!this.resources.has(key)) this.resources.set(key, null);
    }
    return this.resources.get(key) ?? null;
  }

  async objectPath(apiVersion: string, kind: string, namespace: string, name?: string): Promise<string | null> {
    const r = await this.resource(apiVersion, kind);
    if (!r) return null;
    const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    return `${base}${r.namespaced ? `/namespaces/${namespace}` : ''}/${r.plural}${name ? `/${encodeURIComponent(name)}` : ''}`;
  }

  async applyStrict(obj: ManifestObject, namespace: string, fieldManager = 'kubectl'): Promise<Verdict> {
    const path = await this.objectPath(obj.apiVersion, obj.kind, namespace, obj.metadata?.name ?? '');
    if (!path) return { verdict: 'not served', status: 404, message: `${obj.apiVersion} ${obj.kind} is not served`, fields: [] };
    const r = await this.resource(obj.apiVersion, obj.kind);
    const body = { ...obj, metadata: { ...obj.metadata, ...(r?.namespaced ? { namespace } : {}) } };
    const res = await this.call('PATCH', `${path}?fieldManager=${fieldManager}&force=true&fieldValidation=Strict`, JSON.stringify(body), 'application/apply-patch+yaml');
    if (res.status >= 200 && res.status < 300) return { verdict: 'accepted', status: res.status, message: '', fields: [] };
    let status: Status = {};
    try {
      status = JSON.parse(res.body) as Status;
    } catch {
      status = { message: res.body };
    }
    return { verdict: 'rejected', status: res.status, message: status.message ?? '', fields: rejectedFields(status) };
  }

  async get(apiVersion: string, kind: string, namespace: string, name: string): Promise<ManifestObject> {
    const path = await this.objectPath(apiVersion, kind, namespace, name);
    if (!path) throw new Error(`${apiVersion} ${kind} is not served`);
    const res = await this.call('GET', path);
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${res.body}`);
    return JSON.parse(res.body) as ManifestObject;
  }

  async remove(apiVersion: string, kind: string, namespace: string, name: string): Promise<void> {
    const path = await this.objectPath(apiVersion, kind, namespace, name);
    if (path) await this.call('DELETE', path);
  }
}

/**
 * The fields a refusal names: `details.causes[].field` when the server gives
 * causes (schema and webhook validation), else the paths a strict-decoding or
 * webhook message starts its clauses with (`.spec.foo: field not declared in
 * schema`, `spec.x: Invalid value`), normalised without a leading dot.
 */
export function rejectedFields(status: Status): string[] {
  const fields = new Set<string>();
  for (const c of status.details?.causes ?? []) if (c.field) fields.add(c.field.replace(/^\./, ''));
  if (fields.size === 0 && status.message) {
    for (const m of status.message.matchAll(/(?:^|[\s,[(])\.?((?:metadata|spec|status)(?:[.[][\w"=./\\-]*\]?)*):/g)) fields.add(m[1]!.replace(/^\./, ''));
  }
  return [...fields].sort();
}
