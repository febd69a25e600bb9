import { readFileSync, rmSync } from 'node:fs';
import { TEST_ENV_VAR } from './test-env-file';

export default async function globalTeardown(): Promise<void> {
  const stop = (globalThis as { __ironflowStop?: () => Promise<void> }).__ironflowStop;
  if (stop) await stop();
  const file = process.env[TEST_ENV_VAR];
  if (!file) return;
  // Server logs stay for a post-mortem when asked (IRONFLOW_KEEP_TEST_STATE=1).
  const { stateDir } = JSON.parse(readFileSync(file, 'utf8')) as { stateDir: string };
  if (!process.env.IRONFLOW_KEEP_TEST_STATE) rmSync(stateDir, { recursive: true, force: true });
  rmSync(file, { force: true });
}
