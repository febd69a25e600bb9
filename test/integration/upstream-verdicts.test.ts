/**
 * Acceptance for API fidelity: upstream's own example and e2e manifests
 * (BMO examples/, CAPM3 examples/ and e2e data, Cluster API e2e data in
 * v1beta1 and v1beta2, Sidero samples and templates), read in place from the
 * Go module cache or a snapshot, applied with strict field validation to
 * Ironflow's kube-apiserver AND to a second kube-apiserver (same cached
 * binary) that holds only upstream's published CRDs plus upstream's webhooks.
 * Every object gets the same verdict on both, and a refusal names the same
 * fields, except for the kinds Ironflow still serves from its own CRD
 * (IRONFLOW_OWNED_CRDS), whose differences are printed.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { IRONFLOW_OWNED_CRDS } from '../../api/crd-set';
import { crdDirectory, installCrds } from '../../k8s-bridge/install-crds';
import { loadUpstreamIndex } from '../../k8s-bridge/upstream-crds';
import { startKubeApiserver, type KubeApiserver } from '../../workers/embedded/kube-apiserver';
import { loadToolPaths } from '../../workers/embedded/tools';
import { startUpstreamWebhooks, type UpstreamWebhooks } from '../../workers/embedded/upstream-webhooks';
import { sharedEnv, uniqueSuffix } from '../helpers/env';
import { KubeHttp, type ManifestObject, type Verdict } from '../helpers/strict-apply';
import { manifestObjects } from '../helpers/upstream-manifests';
import { filesUnder, moduleDir, snapshotFile, snapshotFiles, snapshotsRoot, UPSTREAM_MODULES, UPSTREAM_SNAPSHOTS } from '../helpers/upstream-sources';

interface Source {
  corpus: string;
  file: string;
  text: string;
}

function corpus(): Source[] {
  const out: Source[] = [];
  const add = (corpusName: string, dir: string, under: string) => {
    for (const f of filesUnder(join(dir, under), /\.ya?ml$/)) out.push({ corpus: corpusName, file: `${under}/${f}`, text: readFileSync(join(dir, under, f), 'utf8') });
  };
  add('BMO examples', moduleDir(UPSTREAM_MODULES.bmo), 'examples');
  add('CAPM3 examples', moduleDir(UPSTREAM_MODULES.capm3), 'examples');
  add('Cluster API e2e data', moduleDir(UPSTREAM_MODULES.clusterApiTest), 'e2e/data/infrastructure-docker');
  if (snapshotsRoot()) {
    for (const f of snapshotFiles(UPSTREAM_SNAPSHOTS.capm3, 'test/e2e/data', /\.ya?ml$/)) out.push({ corpus: 'CAPM3 e2e data', file: f, text: snapshotFile(UPSTREAM_SNAPSHOTS.capm3, f) });
    for (const under of ['app/sidero-controller-manager/config/samples', 'templates']) {
      for (const f of snapshotFiles(UPSTREAM_SNAPSHOTS.sidero, under, /\.ya?ml$/)) out.push({ corpus: 'Sidero samples and templates', file: f, text: snapshotFile(UPSTREAM_SNAPSHOTS.sidero, f) });
    }
  }
  return out;
}

describe('upstream manifests get the same verdict from Ironflow as from upstream', () => {
  let reference: KubeApiserver;
  let referenceWebhooks: UpstreamWebhooks;
  let ours: KubeHttp;
  let theirs: KubeHttp;
  const namespace = `verdicts-${uniqueSuffix()}`;

  beforeAll(async () => {
    const tools = loadToolPaths();
    const dir = join(sharedEnv().stateDir, `reference-${uniqueSuffix()}`);
    mkdirSync(dir, { recursive: true });
    reference = await startKubeApiserver({ kubeApiserverBinary: tools.kubeApiserver, kubeControllerManagerBinary: tools.kubeControllerManager, etcdBinary: tools.etcd, dataDir: join(dir, 'kube'), logDir: join(sharedEnv().stateDir, 'logs'), kubeconfigPath: join(dir, 'kubeconfig') });
    referenceWebhooks = await startUpstreamWebhooks({ binary: tools.upstreamWebhooks, kubeconfigPath: reference.kubeconfigPath, dataDir: join(dir, 'webhooks'), logDir: join(sharedEnv().stateDir, 'logs'), openssl: tools.openssl });
    const kc = new KubeConfig();
    kc.loadFromFile(reference.kubeconfigPath);
    // Upstream's published CRDs only: no kind is served from Ironflow's own CRDs.
    await installCrds(kc, { webhooks: referenceWebhooks, owned: [] });
    ours = new KubeHttp(sharedEnv().kubeconfig);
    theirs = new KubeHttp(reference.kubeconfigPath);
    for (const server of [ours, theirs]) {
      const res = await server.call('POST', '/api/v1/namespaces', JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } }));
      expect(res.status).toBe(201);
    }
  }, 180_000);

  afterAll(async () => {
    await ours?.call('DELETE', `/api/v1/namespaces/${namespace}`);
    await referenceWebhooks?.stop();
    await reference?.stop();
  });

  it('applies every upstream example and e2e object to both servers with strict field validation: same verdicts, refusals naming the same fields', async () => {
    const index = loadUpstreamIndex(join(crdDirectory(), 'upstream')).crds;
    const groups = new Set(index.map((e) => e.name!.split('.').slice(1).join('.')));
    const crdName = new Map(index.map((e) => [`${e.name!.split('.').slice(1).join('.')}/${e.kind}`, e.name!]));
    const isOwned = (o: ManifestObject) => IRONFLOW_OWNED_CRDS.includes(crdName.get(`${o.apiVersion.split('/')[0]}/${o.kind}`) ?? '');
    const rows: Array<{ corpus: string; file: string; object: string; ours: Verdict; theirs: Verdict; same: boolean; owned: boolean }> = [];
    for (const src of corpus()) {
      let objects: ManifestObject[];
      try {
        objects = manifestObjects(src.text, src.file, namespace);
      } catch {
        continue; // a kustomize patch or Go template that is not YAML on its own
      }
      // Upstream API kinds and the Secrets/ConfigMaps they come with; the
      // provider deployments, RBAC and CRDs some example folders carry are not operator input.
      objects = objects.filter((o) => groups.has(o.apiVersion.split('/')[0]!) || (o.apiVersion === 'v1' && ['Secret', 'ConfigMap'].includes(o.kind)));
      const applied: ManifestObject[] = [];
      for (const o of objects) {
        const [a, b] = [await ours.applyStrict(o, namespace), await theirs.applyStrict(o, namespace)];
        if (a.verdict === 'accepted' || b.verdict === 'accepted') applied.push(o);
        const same = a.verdict === b.verdict && JSON.stringify(a.fields) === JSON.stringify(b.fields);
        rows.push({ corpus: src.corpus, file: src.file, object: `${o.apiVersion} ${o.kind} ${o.metadata.name}`, ours: a, theirs: b, same, owned: isOwned(o) });
      }
      for (const o of applied.reverse()) {
        await ours.remove(o.apiVersion, o.kind, namespace, o.metadata.name!);
        await theirs.remove(o.apiVersion, o.kind, namespace, o.metadata.name!);
      }
    }

    const cell = (v: Verdict) => (v.verdict === 'rejected' ? `rejected (${v.fields.join(', ') || v.message.slice(0, 60)})` : v.verdict);
    const lines = ['| corpus | file | object | Ironflow | upstream | same |', '| --- | --- | --- | --- | --- | --- |'];
    for (const r of rows) lines.push(`| ${r.corpus} | ${r.file} | ${r.object} | ${cell(r.ours)} | ${cell(r.theirs)} | ${r.same ? 'yes' : r.owned ? 'NO (Ironflow-owned CRD)' : 'NO'} |`);
    const by = (c: string) => rows.filter((r) => r.corpus === c);
    const summary = [...new Set(rows.map((r) => r.corpus))].map((c) => `${c}: ${by(c).length} objects, ${by(c).filter((r) => r.ours.verdict === 'accepted').length} accepted, ${by(c).filter((r) => !r.same).length} differ`);
    process.stdout.write(`${lines.join('\n')}\n\n${summary.join('\n')}\n`);

    const mismatches = rows.filter((r) => !r.same && !r.owned).map((r) => `${r.file} ${r.object}: Ironflow ${cell(r.ours)} ${r.ours.message.slice(0, 300)} / upstream ${cell(r.theirs)} ${r.theirs.message.slice(0, 300)}`);
    expect(mismatches).toEqual([]);
    for (const c of ['BMO examples', 'CAPM3 examples', 'Cluster API e2e data']) expect(by(c).length).toBeGreaterThan(0);
    // Without snapshots (IRONFLOW_UPSTREAM_SNAPSHOTS) the CAPM3 e2e data and Sidero corpora are not available.
    if (!snapshotsRoot()) process.stdout.write('CAPM3 e2e data and Sidero samples/templates not applied: IRONFLOW_UPSTREAM_SNAPSHOTS is not set\n');
    else for (const c of ['CAPM3 e2e data', 'Sidero samples and templates']) expect(by(c).length).toBeGreaterThan(0);
    expect(rows.filter((r) => !r.owned && r.ours.verdict === 'accepted').length).toBeGreaterThanOrEqual(snapshotsRoot() ? 240 : 70);
  }, 600_000);
});
