import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startProcess, type ManagedProcess, type SuperviseOptions } from './process';
import { freePort } from './ports';

export interface KubeApiserverOptions {
  kubeApiserverBinary: string;
  etcdBinary: string;
  /** Runs beside the API server so namespace deletion finishes and ownerReference garbage collection works. */
  kubeControllerManagerBinary: string;
  /** etcd data, keys, token and certs live here; reusing the folder keeps every object. */
  dataDir: string;
  logDir: string;
  /** Where to write the admin kubeconfig. */
  kubeconfigPath: string;
  apiPort?: number;
  etcdPort?: number;
  etcdPeerPort?: number;
  controllerManagerPort?: number;
  /** How the operator moves the API port (for "port in use" messages). */
  apiPortFlag?: string;
  /** Restart etcd, kube-apiserver and kube-controller-manager when they die or hang (the plane does; tests need not). */
  supervise?: SuperviseOptions;
}

export interface KubeApiserver {
  server: string;
  kubeconfigPath: string;
  processes: ManagedProcess[];
  stop(): Promise<void>;
}

/** Creates a file once; later starts reuse it so tokens and keys stay valid across restarts. */
function once(path: string, make: () => string, mode = 0o600): string {
  if (!existsSync(path)) writeFileSync(path, make(), { mode });
  return readFileSync(path, 'utf8');
}

function httpsGet(url: string, token: string | undefined, ca: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: token ? { authorization: `Bearer ${token}` } : {}, ca, timeout: 2_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * A real kube-apiserver backed by a real etcd, with a real
 * kube-controller-manager, all on loopback: the management cluster for
 * `npm start` and the envtest of the test suite. Authentication is one static
 * admin token (system:masters); the serving certificate is the one
 * kube-apiserver generates for itself, and the kubeconfig trusts exactly
 * that certificate. Each is ready only when the port it serves is held by
 * that very process (a leftover of a dead plane on the same data would
 * answer the same token).
 */
export async function startKubeApiserver(opts: KubeApiserverOptions): Promise<KubeApiserver> {
  const etcdDir = join(opts.dataDir, 'etcd');
  const certDir = join(opts.dataDir, 'certs');
  mkdirSync(etcdDir, { recursive: true, mode: 0o700 });
  mkdirSync(certDir, { recursive: true, mode: 0o700 });
  mkdirSync(opts.logDir, { recursive: true, mode: 0o700 });

  const etcdPort = opts.etcdPort ?? (await freePort());
  const etcdPeerPort = opts.etcdPeerPort ?? (await freePort());
  const apiPort = opts.apiPort ?? (await freePort());
  const kcmPort = opts.controllerManagerPort ?? (await freePort());
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;

  const etcd = await startProcess({
    name: 'etcd',
    command: opts.etcdBinary,
    args: [
      '--data-dir', etcdDir,
      '--listen-client-urls', etcdUrl,
      '--advertise-client-urls', etcdUrl,
      '--listen-peer-urls', `http://127.0.0.1:${etcdPeerPort}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${etcdPeerPort}`,
      '--initial-cluster', `default=http://127.0.0.1:${etcdPeerPort}`,
      '--log-level', 'warn',
      // A test suite or a laptop does not need fsync per write; it makes writes ~10x slower.
      '--unsafe-no-fsync',
    ],
    logFile: join(opts.logDir, `etcd-${etcdPort}.log`),
    ready: async () => {
      const res = await fetch(`${etcdUrl}/health`, { signal: AbortSignal.timeout(1_000) });
      return res.ok;
    },
    readyTimeoutMs: 30_000,
    ports: [
      { port: etcdPort, what: 'etcd clients', flag: opts.apiPortFlag ? `${opts.apiPortFlag} (etcd uses it + 10000)` : undefined },
      { port: etcdPeerPort, what: 'etcd peers', flag: opts.apiPortFlag ? `${opts.apiPortFlag} (etcd peers use it + 10001)` : undefined },
    ],
    supervise: opts.supervise,
  });

  const token = once(join(opts.dataDir, 'admin.token'), () => randomBytes(24).toString('hex')).trim();
  const tokenFile = join(opts.dataDir, 'tokens.csv');
  writeFileSync(tokenFile, `${token},admin,admin,system:masters\n`, { mode: 0o600 });
  const saKey = join(opts.dataDir, 'service-account.key');
  once(saKey, () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString());

  const server = `https://127.0.0.1:${apiPort}`;
  const certFile = join(certDir, 'apiserver.crt');
  let apiserver: ManagedProcess;
  try {
    apiserver = await startProcess({
      name: 'kube-apiserver',
      command: opts.kubeApiserverBinary,
      args: [
        `--etcd-servers=${etcdUrl}`,
        `--secure-port=${apiPort}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        // The default reconciler refuses a loopback advertise address.
        '--endpoint-reconciler-type=none',
        `--cert-dir=${certDir}`,
        '--service-account-issuer=https://kubernetes.default.svc',
        `--service-account-key-file=${saKey}`,
        `--service-account-signing-key-file=${saKey}`,
        `--token-auth-file=${tokenFile}`,
        '--authorization-mode=RBAC',
        '--service-cluster-ip-range=10.0.0.0/24',
        '--enable-priority-and-fairness=false',
        '--v=0',
      ],
      logFile: join(opts.logDir, `kube-apiserver-${apiPort}.log`),
      ready: async () => {
        if (!existsSync(certFile)) return false;
        const res = await httpsGet(`${server}/readyz`, token, readFileSync(certFile));
        return res.status === 200;
      },
      readyTimeoutMs: 90_000,
      ports: [{ port: apiPort, what: 'kube-apiserver', flag: opts.apiPortFlag }],
      supervise: opts.supervise,
    });
  } catch (err) {
    await etcd.stop();
    throw err;
  }

  const kubeconfig = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'ironflow', cluster: { server, 'certificate-authority-data': readFileSync(certFile).toString('base64') } }],
    users: [{ name: 'ironflow-admin', user: { token } }],
    contexts: [{ name: 'ironflow', context: { cluster: 'ironflow', user: 'ironflow-admin', namespace: 'default' } }],
    'current-context': 'ironflow',
  };
  writeFileSync(opts.kubeconfigPath, stringify(kubeconfig), { mode: 0o600 });

  let controllerManager: ManagedProcess;
  try {
    controllerManager = await startControllerManager({ ...opts, kcmPort, certDir, saKey, caFile: certFile });
  } catch (err) {
    await apiserver.stop();
    await etcd.stop();
    throw err;
  }

  return {
    server,
    kubeconfigPath: opts.kubeconfigPath,
    processes: [etcd, apiserver, controllerManager],
    stop: async () => {
      await controllerManager.stop();
      await apiserver.stop();
      await etcd.stop();
    },
  };
}

/**
 * The controllers a management cluster needs for the objects Ironflow and
 * its users create: the namespace controller (a deleted namespace is emptied
 * and goes away instead of staying Terminating) and the garbage collector
 * (objects whose ownerReference points at a deleted owner are collected),
 * plus service accounts and their tokens, as any cluster has. Nothing that
 * needs nodes or a cloud runs. Leader election is off: there is one.
 */
export const CONTROLLERS = ['namespace-controller', 'garbage-collector-controller', 'serviceaccount-controller', 'serviceaccount-token-controller'];

async function startControllerManager(o: KubeApiserverOptions & { kcmPort: number; certDir: string; saKey: string; caFile: string }): Promise<ManagedProcess> {
  const kcmCertDir = join(o.dataDir, 'controller-manager-certs');
  mkdirSync(kcmCertDir, { recursive: true, mode: 0o700 });
  return startProcess({
    name: 'kube-controller-manager',
    command: o.kubeControllerManagerBinary,
    args: [
      `--kubeconfig=${o.kubeconfigPath}`,
      // Its own health endpoints need no delegated authentication on loopback.
      `--authentication-kubeconfig=${o.kubeconfigPath}`,
      `--authorization-kubeconfig=${o.kubeconfigPath}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${o.kcmPort}`,
      `--cert-dir=${kcmCertDir}`,
      '--leader-elect=false',
      `--controllers=${CONTROLLERS.join(',')}`,
      `--service-account-private-key-file=${o.saKey}`,
      `--root-ca-file=${o.caFile}`,
      '--use-service-account-credentials=false',
      '--v=0',
    ],
    logFile: join(o.logDir, `kube-controller-manager-${o.kcmPort}.log`),
    ready: async () => {
      const cert = join(kcmCertDir, 'kube-controller-manager.crt');
      if (!existsSync(cert)) return false;
      const res = await httpsGet(`https://127.0.0.1:${o.kcmPort}/healthz`, undefined, readFileSync(cert));
      return res.status === 200;
    },
    readyTimeoutMs: 60_000,
    ports: [{ port: o.kcmPort, what: 'kube-controller-manager health' }],
    supervise: o.supervise,
  });
}
