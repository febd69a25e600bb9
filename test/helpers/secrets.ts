import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sharedEnv } from './env';

/**
 * Secrets the suite hands to Ironflow (BMC passwords, user data). The global
 * teardown searches every workflow history, search attribute and log line of
 * the run for each of them (in every spelling: test/helpers/secret-scan.ts)
 * and fails the run on any hit. Bytes are kept as bytes, so a password with
 * a NUL or with bytes that are not UTF-8 is searched for exactly.
 */
export function registerTestSecret(...values: Array<string | Buffer>): void {
  const file = join(sharedEnv().stateDir, 'secrets.txt');
  for (const v of values) {
    if (Buffer.from(v).length < 8) throw new Error('test secrets must be at least 8 bytes, or the scan would match by chance');
    appendFileSync(file, `${Buffer.from(v).toString('base64')}\n`);
  }
}

export function registeredSecrets(stateDir: string): Buffer[] {
  const file = join(stateDir, 'secrets.txt');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => Buffer.from(l, 'base64'));
}
