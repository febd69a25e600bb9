/**
 * The few Kubernetes API calls a kubelet makes to register and heartbeat,
 * over undici with the kubeconfig's CA and token. Not @kubernetes/client-node:
 * it is ESM-only (needs require(esm) at run time) and its patch calls need
 * per-call content-type plumbing; five REST calls do not need a client.
 */
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'undici';
import { parse } from 'yaml';

export interface KubeRest {
  server: string;
  call(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<{ status: number; json: unknown }>;
  close(): Promise<void>;
}

interface Kubeconfig {
  'current-context'?: string;
  contexts?: { name: string; context: { cluster: string; user: string } }[];
  clusters?: { name: string; cluster: { server: string; 'certificate-authority-data'?: string } }[];
  users?: { name: string; user: { token?: string } }[];
}

/** Reads a kubeconfig with a token user (what startKubeApiserver writes). */
export async function kubeRestFromFile(path: string): Promise<KubeRest> {
  const kc = parse(await readFile(path, 'utf8')) as Kubeconfig;
  const ctx = kc.contexts?.find((c) => c.name === kc['current-context'])?.context ?? kc.contexts?.[0]?.context;
  const cluster = kc.clusters?.find((c) => c.name === ctx?.cluster)?.cluster ?? kc.clusters?.[0]?.cluster;
  const token = (kc.users?.find((u) => u.name === ctx?.user)?.user ?? kc.users?.[0]?.user)?.token;
  if (!cluster?.server || !token) throw new Error(`kubeconfig ${path} has no server or token user`);
  const ca = cluster['certificate-authority-data'] ? Buffer.from(cluster['certificate-authority-data'], 'base64') : undefined;
  const dispatcher = new Agent({ connect: { ca, timeout: 3_000 }, headersTimeout: 5_000, bodyTimeout: 5_000 });
  return {
    server: cluster.server,
    async call(method, path, body) {
      const res = await request(`${cluster.server}${path}`, {
        method,
        dispatcher,
        headers: {
          authorization: `Bearer ${token}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': method === 'PATCH' ? 'application/merge-patch+json' : 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.body.text();
      let json: unknown = text;
      try {
        json = JSON.parse(text);
      } catch {
        /* keep text */
      }
      return { status: res.statusCode, json };
    },
    close: () => dispatcher.close(),
  };
}

/** Throws with the API's message unless the status is one of `ok`. */
export function expectStatus(what: string, res: { status: number; json: unknown }, ok: number[]): void {
  if (ok.includes(res.status)) return;
  const msg = (res.json as { message?: string } | null)?.message ?? String(res.json).slice(0, 200);
  throw new Error(`${what}: HTTP ${res.status}: ${msg}`);
}
