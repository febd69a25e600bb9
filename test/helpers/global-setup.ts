import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { installCrds } from '../../k8s-bridge/install-crds';
import { startKubeApiserver } from '../../workers/embedded/kube-apiserver';
import { startTemporalDevServer } from '../../workers/embedded/temporal-dev-server';
import { startUpstreamWebhooks } from '../../workers/embedded/upstream-webhooks';
import { loadToolPaths, requireTool } from '../../workers/embedded/tools';
import { TEST_ENV_VAR, defaultTestEnvFile, type SharedTestEnv } from './test-env-file';

/**
 * Starts the real servers once per jest run: an in-memory Temporal dev server
 * and a kube-apiserver + etcd + kube-controller-manager with Ironflow's CRDs,
 * converted and admitted by upstream's webhooks (a real process, as the plane
 * runs it). No fallback: if a server
 * cannot start, the run fails here with the server's own log lines.
 */
export default async function globalSetup(): Promise<void> {
  const t0 = Date.now();
  const tools = loadToolPaths();
  const stateDir = mkdtempSync(join(tmpdir(), 'ironflow-test-'));
  const logDir = join(stateDir, 'logs');
  mkdirSync(logDir, { recursive: true });

  const [temporal, kube] = await Promise.all([
    startTemporalDevServer({ binary: tools.temporal, logDir }),
    startKubeApiserver({
      kubeApiserverBinary: tools.kubeApiserver,
      // As on a real management cluster: namespace deletion finishes, owner references are collected.
      kubeControllerManagerBinary: tools.kubeControllerManager,
      etcdBinary: tools.etcd,
      dataDir: join(stateDir, 'kube'),
      logDir,
      kubeconfigPath: join(stateDir, 'kubeconfig'),
    }),
  ]);
  const webhooks = await startUpstreamWebhooks({ binary: requireTool(tools.upstreamWebhooks, 'upstreamWebhooks'), kubeconfigPath: kube.kubeconfigPath, dataDir: join(stateDir, 'webhooks'), logDir, openssl: tools.openssl });
  (globalThis as { __ironflowStop?: () => Promise<void> }).__ironflowStop = async () => {
    await webhooks.stop();
    await Promise.all([temporal.stop(), kube.stop()]);
  };
  const kc = new KubeConfig();
  kc.loadFromFile(kube.kubeconfigPath);
  await installCrds(kc, { webhooks });

  const env: SharedTestEnv = { temporalAddress: temporal.address, temporalNamespace: temporal.namespace, kubeconfig: kube.kubeconfigPath, stateDir };
  const file = defaultTestEnvFile();
  writeFileSync(file, JSON.stringify(env));
  process.env[TEST_ENV_VAR] = file;
  process.stdout.write(`\nironflow test env: Temporal ${temporal.address}, kube-apiserver ${kube.server} + controller manager (started in ${Date.now() - t0} ms; logs in ${logDir})\n`);
}
