/**
 * Conversion between served versions, through the real kube-apiserver and
 * Ironflow's upstream webhooks process: an object applied in one version and
 * read in every other equals upstream's conversion of it (Cluster API's and
 * CAPM3's own Go conversion functions, called directly as the reference), and
 * Cluster API's own e2e MachineHealthChecks written for v1beta1 and for
 * v1beta2 read as the same object.
 */
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { KubeHttp, type ManifestObject } from '../helpers/strict-apply';
import { asServed, content, multiVersionKinds, offlineConvert } from '../helpers/upstream-conversion';
import { manifestObjects } from '../helpers/upstream-manifests';
import { filesUnder, moduleDir, snapshotFile, snapshotFiles, snapshotsRoot, UPSTREAM_MODULES, UPSTREAM_SNAPSHOTS } from '../helpers/upstream-sources';
import { kubeTestContext, sharedEnv, type KubeTestContext } from '../helpers/env';

const MHC_FIXTURES = ['cluster-template-kcp-remediation/mhc.yaml', 'cluster-template-md-remediation/mhc.yaml'];

describe('conversion between served versions on the real kube-apiserver', () => {
  let kube: KubeTestContext;
  let http: KubeHttp;
  const kinds = multiVersionKinds();
  beforeAll(async () => {
    kube = await kubeTestContext('conv');
    http = new KubeHttp(sharedEnv().kubeconfig);
  });
  afterAll(async () => kube?.cleanup());

  async function applyAccepted(o: ManifestObject): Promise<void> {
    const v = await http.applyStrict(o, kube.namespace);
    if (v.verdict !== 'accepted') throw new Error(`${o.apiVersion} ${o.kind} ${o.metadata.name} refused: ${v.message}`);
  }
  const read = (o: ManifestObject, version: string, name = o.metadata.name!) => http.get(`${o.apiVersion.split('/')[0]}/${version}`, o.kind, kube.namespace, name);

  it('reads Cluster API e2e MachineHealthChecks written for v1beta2 in v1beta1 and back as the same object', async () => {
    const dir = join(moduleDir(UPSTREAM_MODULES.clusterApiTest), 'e2e', 'data', 'infrastructure-docker', 'main');
    for (const [i, file] of MHC_FIXTURES.entries()) {
      const [fixture] = manifestObjects(readFileSync(join(dir, file), 'utf8'), file, kube.namespace);
      const v2 = { ...fixture!, metadata: { name: `mhc-e2e-${i}` } };
      await applyAccepted(v2);
      const asV1 = await read(v2, 'v1beta1');
      expect(asV1.spec).not.toHaveProperty('checks');
      // What a v1beta1 client reads, applied again by a v1beta1 client, is the same object.
      const again = { apiVersion: asV1.apiVersion, kind: asV1.kind, metadata: { name: `mhc-e2e-${i}-again` }, spec: asV1.spec };
      await applyAccepted(again);
      const againV2 = await read(v2, 'v1beta2', `mhc-e2e-${i}-again`);
      expect(againV2.spec).toMatchObject(fixture!.spec as object);
      expect(againV2.spec).toEqual((await read(v2, 'v1beta2')).spec);
    }
  });

  it('the v1beta1 MachineHealthChecks of Cluster API v1.9 e2e data and their v1beta2 rewrites in v1.13 read identically in both versions', async () => {
    const dir = join(moduleDir(UPSTREAM_MODULES.clusterApiTest), 'e2e', 'data', 'infrastructure-docker', 'main');
    for (const [i, file] of MHC_FIXTURES.entries()) {
      const [v2] = manifestObjects(readFileSync(join(dir, file), 'utf8'), file, kube.namespace);
      const [v1] = manifestObjects(readFileSync(join(moduleDir(UPSTREAM_MODULES.clusterApiTestV19), 'e2e', 'data', 'infrastructure-docker', 'main', file), 'utf8'), file, kube.namespace);
      expect(v1!.apiVersion).toBe('cluster.x-k8s.io/v1beta1');
      expect(v2!.apiVersion).toBe('cluster.x-k8s.io/v1beta2');
      await applyAccepted({ ...v1!, metadata: { name: `pair-${i}-v1beta1` } });
      await applyAccepted({ ...v2!, metadata: { name: `pair-${i}-v1beta2` } });
      for (const version of ['v1beta1', 'v1beta2']) {
        const a = await read(v1!, version, `pair-${i}-v1beta1`);
        const b = await read(v1!, version, `pair-${i}-v1beta2`);
        expect({ version, spec: a.spec }).toEqual({ version, spec: b.spec });
      }
    }
  });

  it('every Cluster API and CAPM3 object of upstream e2e data and examples reads in every served version as upstream conversion makes it', async () => {
    // ~100 objects x their other versions, through a busy 2-core machine.

    const sources: Array<{ file: string; text: string }> = [];
    const capiData = join(moduleDir(UPSTREAM_MODULES.clusterApiTest), 'e2e', 'data', 'infrastructure-docker');
    for (const f of filesUnder(capiData, /\.yaml$/)) sources.push({ file: `cluster-api/test e2e/data/infrastructure-docker/${f}`, text: readFileSync(join(capiData, f), 'utf8') });
    const capm3Examples = join(moduleDir(UPSTREAM_MODULES.capm3), 'examples');
    for (const f of filesUnder(capm3Examples, /\.yaml$/)) sources.push({ file: `cluster-api-provider-metal3 examples/${f}`, text: readFileSync(join(capm3Examples, f), 'utf8') });
    if (snapshotsRoot()) {
      for (const f of snapshotFiles(UPSTREAM_SNAPSHOTS.capm3, 'test/e2e/data', /\.yaml$/)) sources.push({ file: `cluster-api-provider-metal3 ${f}`, text: snapshotFile(UPSTREAM_SNAPSHOTS.capm3, f) });
    }
    // Read every object in every other served version through the
    // kube-apiserver, then convert the stored objects directly, in one call
    // per target version (a process start each), and compare.
    const reads: Array<{ what: string; target: string; stored: ManifestObject; live: ManifestObject | Error }> = [];
    for (const { file, text } of sources) {
      let objects: ManifestObject[];
      try {
        objects = manifestObjects(text, file, kube.namespace);
      } catch {
        continue; // Go-template or kustomize fragments that are not YAML on their own
      }
      const applied: ManifestObject[] = [];
      for (const o of objects) {
        const group = o.apiVersion.split('/')[0]!;
        const versions = kinds.get(`${group}/${o.kind}`);
        if (!versions) continue;
        const v = await http.applyStrict(o, kube.namespace);
        if (v.verdict !== 'accepted') continue;
        applied.push(o);
        const stored = await http.get(o.apiVersion, o.kind, kube.namespace, o.metadata.name!);
        for (const version of versions) {
          const target = `${group}/${version}`;
          if (target === o.apiVersion) continue;
          const live = await http.get(target, o.kind, kube.namespace, o.metadata.name!).catch((e: Error) => e);
          reads.push({ what: `${file}: ${o.kind} ${o.metadata.name} ${o.apiVersion} -> ${version}`, target, stored, live });
        }
      }
      for (const o of applied.reverse()) await http.remove(o.apiVersion, o.kind, kube.namespace, o.metadata.name!);
    }
    const convert = (objs: ManifestObject[], target: string): Array<ManifestObject | Error> => {
      try {
        return offlineConvert(sharedEnv().kubeconfig, objs, target);
      } catch (e) {
        // One refusal fails the whole review: convert one by one to see which.
        if (objs.length === 1) return [new Error(String((e as { stderr?: string }).stderr ?? e))];
        return objs.flatMap((o) => convert([o], target));
      }
    };
    const byTarget = new Map<string, typeof reads>();
    for (const r of reads) byTarget.set(r.target, [...(byTarget.get(r.target) ?? []), r]);
    const failures: string[] = [];
    let refused = 0;
    const why = (x: ManifestObject | Error) => (x instanceof Error ? /failed to get apiVersion for kind \w+/.exec(x.message)?.[0] ?? x.message : 'converted');
    for (const [target, group] of byTarget) {
      const references = convert(group.map((r) => r.stored), target);
      group.forEach((r, i) => {
        const reference = references[i]!;
        try {
          if (r.live instanceof Error || reference instanceof Error) {
            // Upstream's conversion can refuse (a v1beta2 reference to a kind
            // whose CRD is not installed has no v1beta1 apiVersion): then the
            // kube-apiserver must refuse the same way.
            expect(why(r.live)).toEqual(why(reference));
            refused++;
          } else {
            expect(content(r.live)).toEqual(content(asServed(reference)));
          }
        } catch (err) {
          failures.push(`${r.what}: ${(err as Error).message.slice(0, 2000)}`);
        }
      });
    }
    const checked = reads.length;
    for (const f of failures) process.stdout.write(`DIFFERS ${f.split('\n')[0]}\n`);
    process.stdout.write(`conversion: ${checked} (object, version) reads compared with upstream's conversion (${refused} refused by both alike), ${failures.length} differ\n`);
    expect(failures).toEqual([]);
    expect(checked - refused).toBeGreaterThanOrEqual(snapshotsRoot() ? 150 : 40);
  }, 300_000);

  describe('Sidero and Talos bootstrap kinds (conversion re-expressed from upstream source)', () => {
    it('a v1alpha1 Server reads in v1alpha2 with system and cpu moved under hardware, and back unchanged', async () => {
      const server = { apiVersion: 'metal.sidero.dev/v1alpha1', kind: 'Server', metadata: { name: `conv-${kube.namespace}` }, spec: { accepted: false, hostname: 'node-1', system: { manufacturer: 'QEMU', productName: 'Standard PC', serialNumber: 'S1' }, cpu: { manufacturer: 'Intel(R) Corporation', version: 'Xeon 8168' } } };
      await applyAccepted(server);
      try {
        const v2 = await http.get('metal.sidero.dev/v1alpha2', 'Server', '', server.metadata.name);
        expect(v2.spec).toEqual({ accepted: false, hostname: 'node-1', hardware: { system: { manufacturer: 'QEMU', productName: 'Standard PC', serialNumber: 'S1' }, compute: { processors: [{ manufacturer: 'Intel(R) Corporation', productName: 'Xeon 8168' }] } } });
        const v1 = await http.get('metal.sidero.dev/v1alpha1', 'Server', '', server.metadata.name);
        expect(v1.spec).toMatchObject(server.spec);
        expect(v1.spec).not.toHaveProperty('hardware');
      } finally {
        await http.remove('metal.sidero.dev/v1alpha2', 'Server', '', server.metadata.name);
      }
    });

    it('a v1alpha2 ServerClass reads in v1alpha1 with hardware qualifiers split into systemInformation and cpu, carrying the hub in the conversion-data annotation', async () => {
      const sc = { apiVersion: 'metal.sidero.dev/v1alpha2', kind: 'ServerClass', metadata: { name: `conv-${kube.namespace}` }, spec: { qualifiers: { hardware: [{ system: { manufacturer: 'QEMU' } }, { compute: { processors: [{ manufacturer: 'AMD', productName: 'EPYC' }] } }] } } };
      await applyAccepted(sc);
      try {
        const v1 = await http.get('metal.sidero.dev/v1alpha1', 'ServerClass', '', sc.metadata.name);
        expect((v1.spec as { qualifiers: unknown }).qualifiers).toEqual({ systemInformation: [{ manufacturer: 'QEMU' }], cpu: [{ manufacturer: 'AMD', version: 'EPYC' }] });
        const annotation = (v1.metadata as { annotations?: Record<string, string> }).annotations?.['cluster.x-k8s.io/conversion-data'];
        expect(JSON.parse(annotation ?? '{}')).toMatchObject({ spec: sc.spec });
        const live = await http.get('metal.sidero.dev/v1alpha2', 'ServerClass', '', sc.metadata.name);
        expect(content(offlineConvert(sharedEnv().kubeconfig, [live], 'metal.sidero.dev/v1alpha1')[0]!)).toEqual(content(v1));
      } finally {
        await http.remove('metal.sidero.dev/v1alpha2', 'ServerClass', '', sc.metadata.name);
      }
    });

    it('a v1alpha2 MetalCluster apiEndpoint becomes the v1alpha3 controlPlaneEndpoint', async () => {
      const mc = { apiVersion: 'infrastructure.cluster.x-k8s.io/v1alpha2', kind: 'MetalCluster', metadata: { name: 'conv-mc' }, spec: { apiEndpoints: [{ host: '10.5.0.2', port: 6443 }] } };
      await applyAccepted(mc);
      const v3 = await read(mc, 'v1alpha3');
      expect(v3.spec).toEqual({ controlPlaneEndpoint: { host: '10.5.0.2', port: 6443 } });
      const v2 = await read(mc, 'v1alpha2');
      expect(v2.spec).toEqual(mc.spec);
    });

    it('a TalosConfig written through v1alpha2 has its error fields as v1alpha3 failure fields, and loses the v1alpha3-only spec fields as upstream does', async () => {
      const tc = { apiVersion: 'bootstrap.cluster.x-k8s.io/v1alpha3', kind: 'TalosConfig', metadata: { name: 'conv-tc' }, spec: { generateType: 'join', talosVersion: 'v1.8' } };
      await applyAccepted(tc);
      const path = await http.objectPath('bootstrap.cluster.x-k8s.io/v1alpha2', 'TalosConfig', kube.namespace, 'conv-tc');
      const res = await http.call('PATCH', `${path}/status`, JSON.stringify({ status: { errorReason: 'Boom', errorMessage: 'bad' } }), 'application/merge-patch+json');
      expect(res.status).toBe(200);
      const v3 = await read(tc, 'v1alpha3');
      expect(v3.status).toMatchObject({ failureReason: 'Boom', failureMessage: 'bad' });
      // Upstream's ConvertTo restores only status.dataSecretName from the
      // conversion-data annotation, so a write through v1alpha2 drops talosVersion.
      expect(v3.spec).toEqual({ generateType: 'join' });
    });
  });
});
