import { ApplicationFailure } from '@temporalio/common';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { BmcCredentials } from '../../api/bmc';
import { FAILURE } from '../../api/errors';

/** Resolves the Secret named by spec.bmc.credentialsName, at call time, inside an activity. */
export interface BmcCredentialsReader {
  read(namespace: string, secretName: string): Promise<BmcCredentials>;
}

function missing(namespace: string, secretName: string, why: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: FAILURE.BmcCredentialsMissing,
    nonRetryable: true,
    message: `BMC credentials Secret ${namespace}/${secretName} ${why}: create it with non-empty keys "username" and "password"`,
  });
}

function malformed(namespace: string, secretName: string, key: string, problem: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: FAILURE.BmcCredentialsMissing,
    nonRetryable: true,
    message: `BMC credentials Secret ${namespace}/${secretName} has a "${key}" that ${problem}: fix that key in the Secret`,
  });
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * What is wrong with one key's bytes, or undefined. Values must be UTF-8
 * (a Redfish login is JSON, an IPMI password a C string) without control
 * characters: a NUL cannot reach ipmitool, and a newline is almost always
 * the one `echo` adds when a Secret is made with `echo pw | base64`.
 */
function keyProblem(bytes: Buffer): string | undefined {
  let text: string;
  try {
    text = STRICT_UTF8.decode(bytes);
  } catch {
    return 'is not valid UTF-8';
  }
  if (/[\r\n]/.test(text)) return "contains a line break (a trailing newline from `echo`? use `echo -n`, or `kubectl create secret generic --from-literal`)";
  if (/[\x00-\x1f\x7f]/.test(text)) return 'contains a control character (such as a NUL byte)';
  return undefined;
}

/**
 * Checks a Secret's data (base64, as the API returns it). The error says
 * which key is wrong and why, never its value or any part of it.
 */
export function credentialsFromSecretData(namespace: string, secretName: string, data: Record<string, string> | undefined): BmcCredentials {
  const out: Record<'username' | 'password', string> = { username: '', password: '' };
  for (const key of ['username', 'password'] as const) {
    const bytes = Buffer.from(data?.[key] ?? '', 'base64');
    if (bytes.length === 0) throw missing(namespace, secretName, `has an empty or missing "${key}"`);
    const problem = keyProblem(bytes);
    if (problem) throw malformed(namespace, secretName, key, problem);
    out[key] = bytes.toString('utf8');
  }
  return out;
}

/** Reads credentials from Kubernetes Secrets. */
export function kubeBmcCredentialsReader(kc: KubeConfig): BmcCredentialsReader {
  const core = kc.makeApiClient(CoreV1Api);
  return {
    async read(namespace, secretName) {
      try {
        const secret = await core.readNamespacedSecret({ namespace, name: secretName });
        return credentialsFromSecretData(namespace, secretName, secret.data);
      } catch (err) {
        if ((err as { code?: number }).code === 404) throw missing(namespace, secretName, 'does not exist');
        if ((err as { name?: string }).name === 'ApplicationFailure') throw err;
        // The client's errors carry the response body; a Secret's must not travel on. Retryable: the API may be back soon.
        const code = (err as { code?: number }).code;
        throw new Error(`reading BMC credentials Secret ${namespace}/${secretName} failed (${code ? `HTTP ${code}` : ((err as Error).name ?? 'error')}); retrying`);
      }
    },
  };
}

/** Credentials from memory, for unit tests and the lab's fixtures. */
export function staticBmcCredentialsReader(entries: Record<string, BmcCredentials>): BmcCredentialsReader {
  return {
    async read(namespace, secretName) {
      const c = entries[`${namespace}/${secretName}`];
      if (!c) throw missing(namespace, secretName, 'does not exist');
      return c;
    },
  };
}
