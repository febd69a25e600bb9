import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { kubeTestContext, type KubeTestContext } from '../helpers/env';

const bmh = (namespace: string, name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'metal3.io/v1alpha1',
  kind: 'BareMetalHost',
  metadata: { name, namespace },
  spec,
});

describe('the real kube-apiserver with Ironflow CRDs', () => {
  let ctx: KubeTestContext;
  let custom: CustomObjectsApi;
  beforeAll(async () => {
    ctx = await kubeTestContext('kube');
    custom = ctx.kc.makeApiClient(CustomObjectsApi);
  });
  afterAll(async () => ctx?.cleanup());

  it('creates a BareMetalHost and its Secret and reads them back', async () => {
    const core = ctx.kc.makeApiClient(CoreV1Api);
    await core.createNamespacedSecret({
      namespace: ctx.namespace,
      body: { metadata: { name: 'server-01-bmc' }, stringData: { username: 'admin', password: 'not-a-real-one' } },
    });
    await custom.createNamespacedCustomObject({
      group: 'metal3.io',
      version: 'v1alpha1',
      namespace: ctx.namespace,
      plural: 'baremetalhosts',
      body: bmh(ctx.namespace, 'server-01', {
        online: true,
        bootMACAddress: '52:54:00:aa:bb:01',
        bmc: { address: 'redfish+http://127.0.0.1:8000/redfish/v1/Systems/1', credentialsName: 'server-01-bmc' },
      }),
    });
    const read = (await custom.getNamespacedCustomObject({
      group: 'metal3.io',
      version: 'v1alpha1',
      namespace: ctx.namespace,
      plural: 'baremetalhosts',
      name: 'server-01',
    })) as { spec: { bmc: { address: string }; automatedCleaningMode: string } };
    expect(read.spec.bmc.address).toBe('redfish+http://127.0.0.1:8000/redfish/v1/Systems/1');
    // The schema's default, applied by the server:
    expect(read.spec.automatedCleaningMode).toBe('metadata');
  });

  it('refuses a BareMetalHost with a malformed MAC, saying which field', async () => {
    const attempt = custom.createNamespacedCustomObject({
      group: 'metal3.io',
      version: 'v1alpha1',
      namespace: ctx.namespace,
      plural: 'baremetalhosts',
      body: bmh(ctx.namespace, 'bad-mac', { bootMACAddress: 'not-a-mac', bmc: { address: 'ipmi://127.0.0.1:6230', credentialsName: 'x' } }),
    });
    await expect(attempt).rejects.toMatchObject({ code: 422, body: expect.stringContaining('spec.bootMACAddress') });
  });
});
