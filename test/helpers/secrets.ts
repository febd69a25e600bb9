import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sharedEnv } from './env';

/**
 * Secrets the suite hands to Ironflow (BMC passwords, user data). The global
 * teardown searches every workflow history, search attribute and log line of
 * the run for each of them and fails the run on any hit.
 */
export function registerTestSecret(...values: string[]): void {
  const file = join(sharedEnv().stateDir, 'secrets.txt');
  for (const v of values) {
    if (v.length < 8) throw new Error('test secrets must be at least 8 characters, or the scan would match by chance');
    appendFileSync(file, `${Buffer.from(v).toString('base64')}\n`);
  }
}

export function registeredSecrets(stateDir: string): string[] {
  const file = join(stateDir, 'secrets.txt');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => Buffer.from(l, 'base64').toString('utf8'));
}
