import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { TEST_ENV_VAR, type SharedTestEnv } from './test-env-file';

/** The servers the global setup started. Throws (never skips) when they are absent. */
export function sharedEnv(): SharedTestEnv {
  const file = process.env[TEST_ENV_VAR];
  if (!file) throw new Error(`${TEST_ENV_VAR} is not set: run the tests with jest (npm test), whose global setup starts Temporal and kube-apiserver`);
  return JSON.parse(readFileSync(file, 'utf8')) as SharedTestEnv;
}

/** A short unique suffix so parallel test files never share a queue, namespace or workflow id. */
export const uniqueSuffix = () => randomBytes(4).toString('hex');

export interface TemporalTestContext {
  client: Client;
  nativeConnection: NativeConnection;
  namespace: string;
  /** A task queue no other test uses. */
  taskQueue: string;
  close(): Promise<void>;
}

/** Connects to the shared real Temporal server with a task queue of this test's own. */
export async function temporalTestContext(label: string): Promise<TemporalTestContext> {
  const env = sharedEnv();
  const connection = await Connection.connect({ address: env.temporalAddress, connectTimeout: 5_000 });
  const nativeConnection = await NativeConnection.connect({ address: env.temporalAddress });
  return {
    client: new Client({ connection, namespace: env.temporalNamespace }),
    nativeConnection,
    namespace: env.temporalNamespace,
    taskQueue: `test-${label}-${uniqueSuffix()}`,
    close: async () => {
      await nativeConnection.close();
      await connection.close();
    },
  };
}

export interface KubeTestContext {
  kc: KubeConfig;
  /** A Kubernetes namespace created for this test, deleted by cleanup(). */
  namespace: string;
  cleanup(): Promise<void>;
}

/** Creates a fresh namespace on the shared real kube-apiserver. */
export async function kubeTestContext(label: string): Promise<KubeTestContext> {
  const env = sharedEnv();
  const kc = new KubeConfig();
  kc.loadFromFile(env.kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = `t-${label}-${uniqueSuffix()}`.toLowerCase().slice(0, 63);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  return {
    kc,
    namespace,
    // Without a namespace controller the objects stay in etcd; they are
    // isolated by name, so that is harmless for the next test.
    cleanup: async () => {
      await core.deleteNamespace({ name: namespace }).catch(() => undefined);
    },
  };
}
