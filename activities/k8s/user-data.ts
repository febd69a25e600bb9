import { ApplicationFailure } from '@temporalio/common';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';

/**
 * Reads the user data Secret a BareMetalHost names (spec.userData), inside
 * the activity that hands it to the agent. Metal3 and CAPI write it under
 * `userData` or `value`. Errors name the Secret and keys, never the content.
 */
export function kubeUserDataReader(kc: KubeConfig): (namespace: string, name: string) => Promise<Buffer> {
  const core = kc.makeApiClient(CoreV1Api);
  return async (namespace, name) => {
    let data: Record<string, string> | undefined;
    try {
      data = (await core.readNamespacedSecret({ namespace, name })).data;
    } catch (err) {
      if ((err as { code?: number }).code === 404) {
        throw ApplicationFailure.create({ type: 'UserDataMissing', nonRetryable: true, message: `user data Secret ${namespace}/${name} does not exist: create it with a "userData" (or "value") key` });
      }
      throw err;
    }
    const b64 = data?.userData ?? data?.value;
    if (!b64) throw ApplicationFailure.create({ type: 'UserDataMissing', nonRetryable: true, message: `user data Secret ${namespace}/${name} has no "userData" or "value" key` });
    return Buffer.from(b64, 'base64');
  };
}
