/**
 * Pointing Ironflow at a real management cluster is safe: a CRD another
 * installation owns (a real Cluster API or Metal3) is never overwritten
 * without --overwrite-foreign-crds. Ironflow compares, says what differs and
 * stops before applying anything; CRDs it installs carry its label.
 * Runs on the real test kube-apiserver with CRDs of a test-only group.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiextensionsV1Api, KubeConfig, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { CRD_OWNER_LABEL } from '../../api/crd-ownership';
import { ForeignCrdError, installCrds } from '../../k8s-bridge/install-crds';
import { sharedEnv, uniqueSuffix } from '../helpers/env';

const group = `t${uniqueSuffix()}.crd-owner.ironflow.dev`;

function crd(plural: string, kind: string, props: Record<string, { type: string }>): V1CustomResourceDefinition {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${group}` },
    spec: {
      group,
      names: { plural, singular: kind.toLowerCase(), kind, listKind: `${kind}List` },
      scope: 'Namespaced',
      versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', properties: props } } } } }],
    },
  };
}

describe('CRD installation next to another installation', () => {
  const kc = new KubeConfig();
  kc.loadFromFile(sharedEnv().kubeconfig);
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  const dir = mkdtempSync(join(tmpdir(), 'ironflow-crds-'));
  const ours = { widgets: crd('widgets', 'Widget', { size: { type: 'integer' } }), gadgets: crd('gadgets', 'Gadget', { color: { type: 'string' } }) };
  writeFileSync(join(dir, 'test.yaml'), [ours.widgets, ours.gadgets].map((d) => stringify(d)).join('---\n'));
  const notes: string[] = [];
  const install = (overwriteForeign = false) => installCrds(kc, { dir, overwriteForeign, log: (m) => notes.push(m) });
  /** Another installer (fieldManager clusterctl, its own label) creates the CRD its own way. */
  const installForeign = async (def: V1CustomResourceDefinition) => {
    await ext.createCustomResourceDefinition({ body: { ...def, metadata: { ...def.metadata, labels: { 'clusterctl.cluster.x-k8s.io': '' } } }, fieldManager: 'clusterctl' });
  };
  const read = (name: string) => ext.readCustomResourceDefinition({ name });

  afterAll(async () => {
    for (const d of Object.values(ours)) await ext.deleteCustomResourceDefinition({ name: d.metadata!.name! }).catch(() => undefined);
  });

  it('stops before applying anything when a foreign CRD differs, naming the CRD, its installer and the difference; the foreign CRD is unchanged', async () => {
    // The other installation's Widget has a `size` of type string and an extra field.
    await installForeign(crd('widgets', 'Widget', { size: { type: 'string' }, owner: { type: 'string' } }));
    const before = await read(ours.widgets.metadata!.name!);
    const err = await install().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ForeignCrdError);
    const msg = (err as Error).message;
    expect(msg).toContain(`widgets.${group} (installed by clusterctl.cluster.x-k8s.io; field managers clusterctl)`);
    expect(msg).toContain('spec.versions[v1].schema.openAPIV3Schema.properties.spec.properties.size.type: Ironflow\'s "integer", installed "string"');
    expect(msg).toContain('spec.versions[v1].schema.openAPIV3Schema.properties.spec.properties.owner: only in the installed CRD');
    expect(msg).toContain('--overwrite-foreign-crds');
    const after = await read(ours.widgets.metadata!.name!);
    expect(after.metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
    // Nothing was applied: the CRD that did not exist yet was not created either.
    await expect(read(ours.gadgets.metadata!.name!)).rejects.toMatchObject({ code: 404 });
  });

  it('with --overwrite-foreign-crds replaces it with Ironflow\'s and labels it; CRDs it creates carry the label too', async () => {
    await install(true);
    const widgets = await read(ours.widgets.metadata!.name!);
    expect(widgets.metadata?.labels?.[CRD_OWNER_LABEL.key]).toBe(CRD_OWNER_LABEL.value);
    expect(widgets.spec.versions[0]?.schema?.openAPIV3Schema?.properties?.spec?.properties?.size?.type).toBe('integer');
    expect(notes.some((n) => n.includes(`widgets.${group}`) && n.includes('overwriting it'))).toBe(true);
    const gadgets = await read(ours.gadgets.metadata!.name!);
    expect(gadgets.metadata?.labels?.[CRD_OWNER_LABEL.key]).toBe(CRD_OWNER_LABEL.value);
    // Its own CRDs are updated on the next start without any flag.
    await expect(install()).resolves.toEqual([ours.widgets.metadata!.name, ours.gadgets.metadata!.name]);
  });

  it('leaves a foreign CRD that equals Ironflow\'s as it is (not relabelled, not taken over)', async () => {
    await ext.deleteCustomResourceDefinition({ name: ours.gadgets.metadata!.name! });
    for (let i = 0; i < 50; i++) {
      if (await read(ours.gadgets.metadata!.name!).then(() => false, () => true)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    await installForeign(ours.gadgets);
    const before = await read(ours.gadgets.metadata!.name!);
    await install();
    const after = await read(ours.gadgets.metadata!.name!);
    expect(after.metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
    expect(after.metadata?.labels?.[CRD_OWNER_LABEL.key]).toBeUndefined();
    expect(notes.some((n) => n.includes(`gadgets.${group}`) && n.includes("equals Ironflow's: left as it is"))).toBe(true);
  });
});
