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

/** Checks a decoded Secret's data; the error says which key is wrong, never its value. */
export function credentialsFromSecretData(namespace: string, secretName: string, data: Record<string, string> | undefined): BmcCredentials {
  const decode = (k: string) => (data?.[k] ? Buffer.from(data[k], 'base64').toString('utf8') : '');
  const username = decode('username');
  const password = decode('password');
  if (!username) throw missing(namespace, secretName, 'has an empty or missing "username"');
  if (!password) throw missing(namespace, secretName, 'has an empty or missing "password"');
  return { username, password };
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
        throw err;
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
