/**
 * API clients that reuse their TLS connections. @kubernetes/client-node 1.4
 * builds a new https.Agent for every request (KubeConfig.applySecurityAuthentication),
 * so each call pays a fresh TLS handshake: ~17 ms per sequential call here
 * and far more under load, which made the finalizer patch the bridge's
 * slowest step. We keep the library's authentication (headers, tokens,
 * exec plugins) and only swap in one keep-alive agent per KubeConfig with the
 * same CA and client certificate.
 */
import { Agent } from 'node:https';
import { createConfiguration, type KubeConfig, ServerConfiguration } from '@kubernetes/client-node';

type Ctx = Parameters<KubeConfig['applySecurityAuthentication']>[0];
type ApiConstructor<T> = new (config: ReturnType<typeof createConfiguration>) => T;

const agents = new WeakMap<KubeConfig, Promise<Agent | undefined>>();

async function makeAgent(kc: KubeConfig): Promise<Agent | undefined> {
  const cluster = kc.getCurrentCluster();
  // Proxies and plain http keep the library's own agent.
  if (!cluster || cluster.proxyUrl || !cluster.server.startsWith('https:')) return undefined;
  const opts: { ca?: Buffer; cert?: Buffer; key?: Buffer; pfx?: Buffer; passphrase?: string; rejectUnauthorized?: boolean } = {};
  await kc.applyToHTTPSOptions(opts as never);
  return new Agent({
    keepAlive: true,
    maxSockets: 32,
    ca: opts.ca,
    cert: opts.cert,
    key: opts.key,
    pfx: opts.pfx,
    passphrase: opts.passphrase,
    servername: cluster.tlsServerName,
    rejectUnauthorized: cluster.skipTLSVerify ? false : opts.rejectUnauthorized,
  });
}

/** Like kc.makeApiClient(Api), with connection reuse. */
export function makeKeepAliveApiClient<T>(kc: KubeConfig, api: ApiConstructor<T>): T {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster (set current-context)');
  let agent = agents.get(kc);
  if (!agent) agents.set(kc, (agent = makeAgent(kc)));
  const shared = agent;
  const auth = {
    getName: () => 'kubeconfig authentication (keep-alive)',
    applySecurityAuthentication: async (ctx: Ctx) => {
      await kc.applySecurityAuthentication(ctx);
      const a = await shared;
      if (a) ctx.setAgent(a);
    },
  };
  return new api(createConfiguration({ baseServer: new ServerConfiguration(cluster.server, {}), authMethods: { default: auth as never } }));
}
