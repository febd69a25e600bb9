import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What the global setup started, for test files (which run in other processes). */
export interface SharedTestEnv {
  temporalAddress: string;
  temporalNamespace: string;
  kubeconfig: string;
  stateDir: string;
}

/** The env var naming the file where the global setup wrote {@link SharedTestEnv}. */
export const TEST_ENV_VAR = 'IRONFLOW_TEST_ENV_FILE';
export const defaultTestEnvFile = () => join(tmpdir(), `ironflow-jest-${process.pid}.json`);
