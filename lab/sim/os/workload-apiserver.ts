/**
 * The API server of a simulated workload cluster: a real kube-apiserver and
 * etcd (the binaries `npm run setup` built, named in .ironflow/tools.json),
 * on free loopback ports, data under the server's own folder. The lab's own
 * small launcher, so lab/ needs nothing from the plane's code: the workload
 * cluster of a lab server is hardware-side, not part of Ironflow.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { projectRoot } from '../../../api/project-root';
import { freeLoopbackPort, startLabChild, type LabChild } from '../../bmc/child';

export interface WorkloadApiserver {
  server: string;
  kubeconfigPath: string;
  stop(): Promise<void>;
}

function toolPaths(): { kubeApiserver: string; etcd: string } {
  const file = join(projectRoot(__dirname), '.ironflow', 'tools.json');
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run setup\` first (it builds kube-apiserver and etcd)`);
  return JSON.parse(readFileSync(file, 'utf8')) as { kubeApiserver: string; etcd: string };
}

function readyz(url: string, token: string, ca: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(url, { headers: { authorization: `Bearer ${token}` }, ca, timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

export async function startWorkloadApiserver(o: { dataDir: string; logDir: string; kubeconfigPath: string }): Promise<WorkloadApiserver> {
  const tools = toolPaths();
  const etcdDir = join(o.dataDir, 'etcd');
  const certDir = join(o.dataDir, 'certs');
  for (const d of [etcdDir, certDir, o.logDir]) mkdirSync(d, { recursive: true, mode: 0o700 });
  const [etcdPort, peerPort, apiPort] = [await freeLoopbackPort(), await freeLoopbackPort(), await freeLoopbackPort()];
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const etcd = await startLabChild({
    command: tools.etcd,
    args: ['--data-dir', etcdDir, '--listen-client-urls', etcdUrl, '--advertise-client-urls', etcdUrl, '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`, '--initial-cluster', `default=http://127.0.0.1:${peerPort}`, '--log-level', 'warn', '--unsafe-no-fsync'],
    logFile: join(o.logDir, 'etcd.log'),
    ready: async () => (await fetch(`${etcdUrl}/health`, { signal: AbortSignal.timeout(1_000) })).ok,
    readyTimeoutMs: 30_000,
  });
  const tokenFile = join(o.dataDir, 'admin.token');
  if (!existsSync(tokenFile)) writeFileSync(tokenFile, randomBytes(24).toString('hex'), { mode: 0o600 });
  const token = readFileSync(tokenFile, 'utf8').trim();
  writeFileSync(join(o.dataDir, 'tokens.csv'), `${token},admin,admin,system:masters\n`, { mode: 0o600 });
  const saKey = join(o.dataDir, 'service-account.key');
  if (!existsSync(saKey)) writeFileSync(saKey, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(), { mode: 0o600 });
  const server = `https://127.0.0.1:${apiPort}`;
  const certFile = join(certDir, 'apiserver.crt');
  let apiserver: LabChild;
  try {
    apiserver = await startLabChild({
      command: tools.kubeApiserver,
      args: [`--etcd-servers=${etcdUrl}`, `--secure-port=${apiPort}`, '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1', '--endpoint-reconciler-type=none',
        `--cert-dir=${certDir}`, '--service-account-issuer=https://kubernetes.default.svc', `--service-account-key-file=${saKey}`, `--service-account-signing-key-file=${saKey}`,
        `--token-auth-file=${join(o.dataDir, 'tokens.csv')}`, '--authorization-mode=RBAC', '--service-cluster-ip-range=10.0.0.0/24', '--enable-priority-and-fairness=false', '--v=0'],
      logFile: join(o.logDir, 'kube-apiserver.log'),
      ready: async () => existsSync(certFile) && (await readyz(`${server}/readyz`, token, readFileSync(certFile))),
      readyTimeoutMs: 90_000,
    });
  } catch (err) {
    await etcd.stop();
    throw err;
  }
  const kubeconfig = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'workload', cluster: { server, 'certificate-authority-data': readFileSync(certFile).toString('base64') } }],
    users: [{ name: 'workload-admin', user: { token } }],
    contexts: [{ name: 'workload', context: { cluster: 'workload', user: 'workload-admin', namespace: 'default' } }],
    'current-context': 'workload',
  };
  writeFileSync(o.kubeconfigPath, stringify(kubeconfig), { mode: 0o600 });
  return {
    server,
    kubeconfigPath: o.kubeconfigPath,
    stop: async () => {
      await apiserver.stop();
      await etcd.stop();
    },
  };
}
