import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { startProcess, type ManagedProcess, type SuperviseOptions } from './process';
import { freePort } from './ports';

/**
 * The feature gates Ironflow's plane runs Cluster API's webhooks with: upstream's
 * defaults plus ClusterTopology, which clusterctl users turn on for ClusterClass
 * (`CLUSTER_TOPOLOGY=true`) and Cluster API's own e2e data needs.
 */
export const UPSTREAM_FEATURE_GATES = 'ClusterTopology=true';

export interface UpstreamWebhooksOptions {
  /** The ironflow-upstream-webhooks binary (tools.json `upstreamWebhooks`). */
  binary: string;
  /** Admin kubeconfig of the kube-apiserver these webhooks serve. */
  kubeconfigPath: string;
  /** TLS material lives here; reusing the folder keeps the CA, so installed CRDs stay valid. */
  dataDir: string;
  logDir: string;
  openssl: string;
  port?: number;
  featureGates?: string;
  /** Restart it (same port, same certificate) when it exits or stops answering, as the plane does for kube-apiserver. */
  supervise?: SuperviseOptions;
}

export interface UpstreamWebhooks {
  /** https://127.0.0.1:<port>, where the kube-apiserver reaches the webhooks. */
  url: string;
  /** PEM of the CA that signed the serving certificate (for clientConfig.caBundle). */
  caPem: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

/**
 * A CA and a serving certificate for 127.0.0.1, made once per data folder with
 * openssl (Node cannot issue certificates). The kube-apiserver verifies the
 * webhook against the CA given in each CRD's and webhook configuration's caBundle.
 */
function ensureCertificates(openssl: string, dir: string): { certDir: string; caPem: string } {
  const certDir = join(dir, 'tls');
  mkdirSync(certDir, { recursive: true, mode: 0o700 });
  const ca = join(certDir, 'ca.crt');
  const crt = join(certDir, 'tls.crt');
  if (!existsSync(crt)) {
    const run = (...args: string[]) => execFileSync(openssl, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '3650', '-subj', '/CN=ironflow-upstream-webhooks-ca', '-keyout', join(certDir, 'ca.key'), '-out', ca);
    run('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', join(certDir, 'tls.key'), '-out', join(certDir, 'tls.csr'));
    writeFileSync(join(certDir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
    run('x509', '-req', '-in', join(certDir, 'tls.csr'), '-CA', ca, '-CAkey', join(certDir, 'ca.key'), '-CAcreateserial', '-days', '3650', '-extfile', join(certDir, 'san.ext'), '-out', `${crt}.tmp`);
    renameSync(`${crt}.tmp`, crt);
  }
  return { certDir, caPem: readFileSync(ca, 'utf8') };
}

function healthy(url: string, ca: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(`${url}/healthz`, { ca, timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

/**
 * Starts Ironflow's build of upstream's webhooks (scripts/upstream-api/webhook):
 * CRD conversion for every multi-version CRD and Cluster API's defaulting and
 * validating admission webhooks, on loopback with TLS. Ready once it answers
 * /healthz over TLS verified against its CA.
 */
export async function startUpstreamWebhooks(opts: UpstreamWebhooksOptions): Promise<UpstreamWebhooks> {
  mkdirSync(opts.logDir, { recursive: true });
  const { certDir, caPem } = ensureCertificates(opts.openssl, opts.dataDir);
  const port = opts.port ?? (await freePort());
  const url = `https://127.0.0.1:${port}`;
  const proc = await startProcess({
    name: 'upstream-webhooks',
    command: opts.binary,
    args: ['--kubeconfig', opts.kubeconfigPath, '--host', '127.0.0.1', '--port', String(port), '--cert-dir', certDir, '--feature-gates', opts.featureGates ?? UPSTREAM_FEATURE_GATES],
    logFile: join(opts.logDir, `upstream-webhooks-${port}.log`),
    ready: () => healthy(url, caPem),
    readyTimeoutMs: 30_000,
    ports: [{ port, what: 'upstream webhooks (CRD conversion, admission)' }],
    supervise: opts.supervise,
  });
  return { url, caPem, process: proc, stop: () => proc.stop() };
}
