/**
 * The envtest (and the embedded plane) runs a real kube-controller-manager
 * beside kube-apiserver, as a real management cluster does: without it a
 * deleted namespace stays Terminating forever and objects whose owner was
 * deleted are never collected.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, CustomObjectsApi, KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import { sharedEnv, uniqueSuffix } from '../helpers/env';

const HARDWARE_DATA = { group: 'metal3.io', version: 'v1alpha1', plural: 'hardwaredata' };

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<{ value: T; ms: number }> {
  const t0 = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined) return { value, ms: Date.now() - t0 };
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await sleep(250);
  }
}

const notFound = (err: unknown) => (err as { code?: number }).code === 404;

describe('kube-controller-manager beside the test kube-apiserver', () => {
  const kc = new KubeConfig();
  kc.loadFromFile(sharedEnv().kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);

  it('finishes the deletion of a namespace holding ConfigMaps, a Secret and a custom resource within 60 s', async () => {
    const ns = `t-nsdel-${uniqueSuffix()}`;
    await core.createNamespace({ body: { metadata: { name: ns } } });
    for (let i = 0; i < 3; i++) await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: `cm-${i}` }, data: { i: String(i) } } });
    await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 's' }, stringData: { k: 'v' } } });
    await custom.createNamespacedCustomObject({ ...HARDWARE_DATA, namespace: ns, body: { apiVersion: 'metal3.io/v1alpha1', kind: 'HardwareData', metadata: { name: 'hd' }, spec: {} } });

    await core.deleteNamespace({ name: ns });
    const gone = await until(`namespace ${ns} going away`, 60_000, async () => {
      try {
        await core.readNamespace({ name: ns });
        return undefined;
      } catch (err) {
        if (notFound(err)) return true;
        throw err;
      }
    });
    process.stdout.write(`controller-manager: namespace with 5 objects deleted in ${gone.ms} ms\n`);
    expect(gone.value).toBe(true);
  }, 90_000);

  it('collects an object whose ownerReference points at a deleted owner, and keeps one whose owner lives', async () => {
    const ns = `t-gc-${uniqueSuffix()}`;
    await core.createNamespace({ body: { metadata: { name: ns } } });
    try {
      const owner = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'owner' } } });
      const keeper = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'keeper' } } });
      const ref = (cm: V1ConfigMap) => [{ apiVersion: 'v1', kind: 'ConfigMap', name: cm.metadata!.name!, uid: cm.metadata!.uid! }];
      await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'orphan-to-be', ownerReferences: ref(owner) } } });
      await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'kept-child', ownerReferences: ref(keeper) } } });

      await core.deleteNamespacedConfigMap({ namespace: ns, name: 'owner' });
      const collected = await until('garbage collection of orphan-to-be', 60_000, async () => {
        try {
          await core.readNamespacedConfigMap({ namespace: ns, name: 'orphan-to-be' });
          return undefined;
        } catch (err) {
          if (notFound(err)) return true;
          throw err;
        }
      });
      process.stdout.write(`controller-manager: dependent of a deleted owner collected in ${collected.ms} ms\n`);
      // Negative control: the garbage collector is not deleting everything that has an owner.
      const kept = await core.readNamespacedConfigMap({ namespace: ns, name: 'kept-child' });
      expect(kept.metadata?.ownerReferences?.[0]?.name).toBe('keeper');
    } finally {
      await core.deleteNamespace({ name: ns }).catch(() => undefined);
    }
  }, 90_000);
});
