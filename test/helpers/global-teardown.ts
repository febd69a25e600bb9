import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { scanForSecrets, type ScanResult } from './secret-scan';
import { registeredSecrets } from './secrets';
import { TEST_ENV_VAR, type SharedTestEnv } from './test-env-file';

export default async function globalTeardown(): Promise<void> {
  const file = process.env[TEST_ENV_VAR];
  const env = file ? (JSON.parse(readFileSync(file, 'utf8')) as SharedTestEnv) : undefined;
  let scan: ScanResult | undefined;
  if (env) {
    // Metal3's example Secret (applied by the bridge tests) holds this password.
    const secrets = [...registeredSecrets(env.stateDir), Buffer.from('MWYyZDFlMmU2N2Rm', 'base64').toString()];
    scan = await scanForSecrets({ temporalAddress: env.temporalAddress, namespace: env.temporalNamespace, logDir: join(env.stateDir, 'logs'), secrets });
    process.stdout.write(
      `secret scan: ${secrets.length} secrets x ${scan.workflows} workflow histories (${scan.events} events, search attributes included, ${scan.decryptedPayloads} encrypted payloads opened, ${scan.undecryptablePayloads} without a key) and ${scan.logFiles} log files (${(scan.logBytes / 2 ** 20).toFixed(1)} MiB): ${scan.hits.length} hits\n`,
    );
  }
  const stop = (globalThis as { __ironflowStop?: () => Promise<void> }).__ironflowStop;
  if (stop) await stop();
  if (!file || !env) return;
  if (scan && scan.hits.length > 0) throw new Error(`secrets leaked:\n  ${scan.hits.slice(0, 20).join('\n  ')}`);
  // Server logs stay for a post-mortem when asked (IRONFLOW_KEEP_TEST_STATE=1).
  const { stateDir } = env;
  if (!process.env.IRONFLOW_KEEP_TEST_STATE) rmSync(stateDir, { recursive: true, force: true });
  rmSync(file, { force: true });
}
