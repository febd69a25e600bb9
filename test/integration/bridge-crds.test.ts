/**
 * Ironflow's CRDs on the real kube-apiserver: operator YAML applies unchanged,
 * `kubectl get` prints the columns users know, both Cluster API versions are
 * served, and malformed objects are refused at apply time naming the field,
 * by upstream's schemas and webhooks (Cluster API kinds) or Ironflow's own
 * BareMetalHost CRD.
 */
import { execFileSync, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { join } from 'node:path';
import { CustomObjectsApi, type KubernetesObject } from '@kubernetes/client-node';
import { applyObjects, readManifests, refusalMessage } from '../../k8s-bridge/apply';
import { crdDirectory, loadCrds } from '../../k8s-bridge/install-crds';
import { loadToolPaths } from '../../workers/embedded/tools';
import { kubeTestContext, sharedEnv, type KubeTestContext } from '../helpers/env';

const MANIFESTS = join(__dirname, '..', '..', '..', 'shared', 'testdata', 'manifests', 'metal3');

async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms`);
    await sleep(50);
  }
}

const ref = (apiVersion: string, kind: string, name: string) => ({ apiVersion, kind, name });

/** `kubectl get` header for a version of an upstream CRD: NAME, then its priority-0 printer columns. */
function printerHeader(file: string, version: string): string[] {
  const crd = parse(readFileSync(join(crdDirectory(), 'upstream', file), 'utf8')) as { spec: { versions: Array<{ name: string; additionalPrinterColumns?: Array<{ name: string; priority?: number }> }> } };
  const columns = crd.spec.versions.find((v) => v.name === version)?.additionalPrinterColumns ?? [];
  return ['NAME', ...columns.filter((c) => !c.priority).map((c) => c.name.toUpperCase())];
}

/** The cell of a `kubectl get` table under `column` in the row of `name` (columns are aligned; empty cells are blank). */
function cell(table: string, name: string, column: string): string {
  const [header = '', ...rows] = table.split('\n');
  const row = rows.find((r) => r.startsWith(`${name} `)) ?? '';
  const start = header.search(new RegExp(`(^|\\s{2})${column}(\\s{2}|$)`)) + (header.startsWith(column) ? 0 : 2);
  const next = header.slice(start + column.length).search(/\S/);
  const end = next < 0 ? undefined : start + column.length + next;
  return row.slice(start, end).trim();
}
const bmh = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'metal3.io/v1alpha1', kind: 'BareMetalHost', metadata: { name }, spec });
const goodBmc = { address: 'redfish+https://10.0.0.1/redfish/v1/Systems/1', credentialsName: 'bmc-secret' };
const machineSpec = (cluster: string) => ({
  clusterName: cluster,
  version: 'v1.31.2',
  bootstrap: { configRef: ref('bootstrap.cluster.x-k8s.io/v1beta1', 'KubeadmConfigTemplate', 'workers') },
  infrastructureRef: ref('infrastructure.cluster.x-k8s.io/v1beta1', 'Metal3MachineTemplate', 'workers'),
});
const md = (name: string, replicas: number, selectorLabels: Record<string, string>, templateLabels: Record<string, string>) => ({
  apiVersion: 'cluster.x-k8s.io/v1beta1',
  kind: 'MachineDeployment',
  metadata: { name },
  spec: { clusterName: 'c1', replicas, selector: { matchLabels: selectorLabels }, template: { metadata: { labels: templateLabels }, spec: machineSpec('c1') } },
});

/** A Metal3-flavoured cluster as the CAPM3 quick start writes it (v1beta1 names). */
const metal3Cluster: KubernetesObject[] = [
  {
    apiVersion: 'cluster.x-k8s.io/v1beta1',
    kind: 'Cluster',
    metadata: { name: 'c1' },
    spec: {
      clusterNetwork: { pods: { cidrBlocks: ['192.168.0.0/18'] }, services: { cidrBlocks: ['10.96.0.0/12'] } },
      controlPlaneRef: ref('controlplane.cluster.x-k8s.io/v1beta1', 'KubeadmControlPlane', 'c1'),
      infrastructureRef: ref('infrastructure.cluster.x-k8s.io/v1beta1', 'Metal3Cluster', 'c1'),
    },
  } as KubernetesObject,
  { apiVersion: 'infrastructure.cluster.x-k8s.io/v1beta1', kind: 'Metal3Cluster', metadata: { name: 'c1' }, spec: { controlPlaneEndpoint: { host: '192.168.111.249', port: 6443 }, noCloudProvider: true } } as KubernetesObject,
  {
    apiVersion: 'controlplane.cluster.x-k8s.io/v1beta1',
    kind: 'KubeadmControlPlane',
    metadata: { name: 'c1' },
    spec: {
      replicas: 3,
      version: 'v1.31.2',
      machineTemplate: { infrastructureRef: ref('infrastructure.cluster.x-k8s.io/v1beta1', 'Metal3MachineTemplate', 'c1-controlplane') },
      kubeadmConfigSpec: { clusterConfiguration: {}, initConfiguration: { nodeRegistration: { name: '{{ ds.meta_data.name }}', kubeletExtraArgs: { 'node-labels': 'metal3.io/uuid={{ ds.meta_data.uuid }}' } } } },
    },
  } as KubernetesObject,
  {
    apiVersion: 'infrastructure.cluster.x-k8s.io/v1beta1',
    kind: 'Metal3MachineTemplate',
    metadata: { name: 'workers' },
    spec: { nodeReuse: false, template: { spec: { automatedCleaningMode: 'metadata', image: { url: 'http://172.22.0.1/images/ubuntu.qcow2', checksum: 'http://172.22.0.1/images/ubuntu.qcow2.sha256sum', checksumType: 'sha256', format: 'qcow2' }, dataTemplate: { name: 'workers-template' } } } },
  } as KubernetesObject,
  { apiVersion: 'bootstrap.cluster.x-k8s.io/v1beta1', kind: 'KubeadmConfigTemplate', metadata: { name: 'workers' }, spec: { template: { spec: { joinConfiguration: { nodeRegistration: { name: '{{ ds.meta_data.name }}' } } } } } } as KubernetesObject,
  md('c1-workers', 2, { 'cluster.x-k8s.io/cluster-name': 'c1', nodepool: 'np0' }, { 'cluster.x-k8s.io/cluster-name': 'c1', nodepool: 'np0' }) as KubernetesObject,
  {
    apiVersion: 'cluster.x-k8s.io/v1beta1',
    kind: 'MachineHealthCheck',
    metadata: { name: 'c1-workers' },
    spec: { clusterName: 'c1', maxUnhealthy: '40%', nodeStartupTimeout: '10m', selector: { matchLabels: { nodepool: 'np0' } }, unhealthyConditions: [{ type: 'Ready', status: 'Unknown', timeout: '300s' }, { type: 'Ready', status: 'False', timeout: '300s' }] },
  } as KubernetesObject,
];

/** A Sidero-flavoured cluster (Talos), as the Sidero bootstrap guide writes it. */
const sideroCluster: KubernetesObject[] = [
  { apiVersion: 'metal.sidero.dev/v1alpha2', kind: 'ServerClass', metadata: { name: 'workers-x86' }, spec: { qualifiers: { hardware: [{ compute: { processors: [{ manufacturer: 'Intel(R) Corporation' }] } }, { system: { manufacturer: 'QEMU' } }] }, selector: { matchLabels: { rack: 'r1' } }, configPatches: [{ op: 'replace', path: '/machine/install/disk', value: '/dev/sda' }] } } as KubernetesObject,
  { apiVersion: 'metal.sidero.dev/v1alpha2', kind: 'Server', metadata: { name: '4c4c4544-0047-3010-8052-b2c04f4c4d32' }, spec: { accepted: false, hostname: 'node-1', bmc: { endpoint: '10.0.0.21', port: 623, interface: 'lanplus', userFrom: { secretKeyRef: { name: 'bmc', namespace: 'default', key: 'user' } }, passFrom: { secretKeyRef: { name: 'bmc', namespace: 'default', key: 'pass' } } } } } as KubernetesObject,
  { apiVersion: 'infrastructure.cluster.x-k8s.io/v1alpha3', kind: 'MetalCluster', metadata: { name: 't1' }, spec: { controlPlaneEndpoint: { host: '10.5.0.2', port: 6443 } } } as KubernetesObject,
  { apiVersion: 'infrastructure.cluster.x-k8s.io/v1alpha3', kind: 'MetalMachineTemplate', metadata: { name: 't1-workers' }, spec: { template: { spec: { serverClassRef: { apiVersion: 'metal.sidero.dev/v1alpha2', kind: 'ServerClass', name: 'workers-x86' } } } } } as KubernetesObject,
  { apiVersion: 'controlplane.cluster.x-k8s.io/v1alpha3', kind: 'TalosControlPlane', metadata: { name: 't1-cp' }, spec: { version: 'v1.31.2', replicas: 1, infrastructureTemplate: { kind: 'MetalMachineTemplate', apiVersion: 'infrastructure.cluster.x-k8s.io/v1alpha3', name: 't1-cp' }, controlPlaneConfig: { controlplane: { generateType: 'controlplane', talosVersion: 'v1.8' } } } } as KubernetesObject,
  { apiVersion: 'bootstrap.cluster.x-k8s.io/v1alpha3', kind: 'TalosConfigTemplate', metadata: { name: 't1-workers' }, spec: { template: { spec: { generateType: 'join', talosVersion: 'v1.8' } } } } as KubernetesObject,
];

describe('Ironflow CRDs on the real kube-apiserver', () => {
  let kube: KubeTestContext;
  let custom: CustomObjectsApi;
  const kubectl = (...args: string[]) => execFileSync(loadToolPaths().kubectl, ['--kubeconfig', sharedEnv().kubeconfig, '-n', kube.namespace, ...args], { encoding: 'utf8' });
  beforeAll(async () => {
    kube = await kubeTestContext('crds');
    custom = kube.kc.makeApiClient(CustomObjectsApi);
  });
  afterAll(async () => kube?.cleanup());

  it('serves every kind of issue 6 under its upstream group and versions', () => {
    const served = loadCrds().flatMap((c) => (c.spec.versions ?? []).map((v) => `${c.spec.names.kind}.${c.spec.group}/${v.name}`));
    for (const want of [
      'BareMetalHost.metal3.io/v1alpha1', 'HardwareData.metal3.io/v1alpha1',
      'Server.metal.sidero.dev/v1alpha2', 'ServerClass.metal.sidero.dev/v1alpha2',
      'Cluster.cluster.x-k8s.io/v1beta1', 'Cluster.cluster.x-k8s.io/v1beta2', 'Machine.cluster.x-k8s.io/v1beta2', 'MachineSet.cluster.x-k8s.io/v1beta1',
      'MachineDeployment.cluster.x-k8s.io/v1beta2', 'MachineHealthCheck.cluster.x-k8s.io/v1beta1', 'MachineHealthCheck.cluster.x-k8s.io/v1beta2',
      'KubeadmControlPlane.controlplane.cluster.x-k8s.io/v1beta1', 'TalosControlPlane.controlplane.cluster.x-k8s.io/v1alpha3',
      'KubeadmConfigTemplate.bootstrap.cluster.x-k8s.io/v1beta1', 'TalosConfigTemplate.bootstrap.cluster.x-k8s.io/v1alpha3',
      'Metal3Cluster.infrastructure.cluster.x-k8s.io/v1beta1', 'Metal3MachineTemplate.infrastructure.cluster.x-k8s.io/v1beta1',
      'MetalCluster.infrastructure.cluster.x-k8s.io/v1alpha3', 'MetalMachineTemplate.infrastructure.cluster.x-k8s.io/v1alpha3',
    ]) expect(served).toContain(want);
  });

  it('applies the Metal3 example manifests unchanged, and kubectl get bmh prints STATE CONSUMER ONLINE ERROR AGE', async () => {
    const files = readdirSync(MANIFESTS).filter((f) => f.endsWith('.yaml')).sort();
    expect(files.length).toBeGreaterThanOrEqual(2);
    for (const f of files) await applyObjects(kube.kc, readManifests(join(MANIFESTS, f)), { namespace: kube.namespace });
    const out = kubectl('get', 'bmh');
    expect(out.split('\n')[0]?.split(/\s{2,}/)).toEqual(['NAME', 'STATE', 'CONSUMER', 'ONLINE', 'ERROR', 'AGE']);
    expect(out).toMatch(/example-baremetalhost\s+true\s+\d+s/);
  });

  it('applies a Metal3-flavoured and a Sidero-flavoured Cluster API cluster unchanged; kubectl get machines shows the phase', async () => {
    await applyObjects(kube.kc, [...metal3Cluster, ...sideroCluster], { namespace: kube.namespace });
    await applyObjects(kube.kc, [{ apiVersion: 'cluster.x-k8s.io/v1beta1', kind: 'Machine', metadata: { name: 'c1-workers-abc' }, spec: machineSpec('c1') } as KubernetesObject], { namespace: kube.namespace });
    // Status is written in v1beta2, as the Machine controller writes it: upstream's
    // conversion restores status.phase from the hub on a v1beta1 round trip, so a
    // v1beta1 client cannot write it.
    await custom.patchNamespacedCustomObjectStatus(
      { group: 'cluster.x-k8s.io', version: 'v1beta2', plural: 'machines', namespace: kube.namespace, name: 'c1-workers-abc', body: [{ op: 'add', path: '/status', value: { phase: 'Provisioning' } }] },
    );
    // kubectl prints the columns of the group's preferred version, v1beta2, as upstream's CRD declares them.
    const out = kubectl('get', 'machines');
    expect(out.split('\n')[0]?.split(/\s{2,}/)).toEqual(printerHeader('cluster.x-k8s.io_machines.yaml', 'v1beta2'));
    expect(out.split('\n')[0]?.split(/\s{2,}/)).toEqual(['NAME', 'CLUSTER', 'NODE NAME', 'FAILURE DOMAIN', 'READY', 'AVAILABLE', 'UP-TO-DATE', 'PHASE', 'AGE', 'VERSION']);
    expect(cell(out, 'c1-workers-abc', 'CLUSTER')).toBe('c1');
    expect(cell(out, 'c1-workers-abc', 'PHASE')).toBe('Provisioning');
    expect(cell(out, 'c1-workers-abc', 'VERSION')).toBe('v1.31.2');
    // `kubectl get machines -w` prints a new row as the phase changes.
    const watch = spawn(loadToolPaths().kubectl, ['--kubeconfig', sharedEnv().kubeconfig, '-n', kube.namespace, 'get', 'machines', '-w'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let watched = '';
    watch.stdout.on('data', (d: Buffer) => (watched += d.toString()));
    try {
      await until(() => watched.includes('Provisioning'));
      await custom.patchNamespacedCustomObjectStatus({ group: 'cluster.x-k8s.io', version: 'v1beta2', plural: 'machines', namespace: kube.namespace, name: 'c1-workers-abc', body: [{ op: 'replace', path: '/status/phase', value: 'Running' }] });
      await until(() => /c1-workers-abc\s+c1\s.*Running/.test(watched));
    } finally {
      watch.kill();
    }
    const header = watched.split('\n')[0] ?? '';
    expect(watched.split('\n').filter((l) => l.startsWith('c1-workers-abc')).map((l) => cell(`${header}\n${l}`, 'c1-workers-abc', 'PHASE'))).toEqual(['Provisioning', 'Running']);
    expect(kubectl('get', 'md').split('\n')[0]?.split(/\s{2,}/)).toEqual(printerHeader('cluster.x-k8s.io_machinedeployments.yaml', 'v1beta2'));
    expect(kubectl('get', 'servers').split('\n')[0]?.split(/\s{2,}/)).toEqual(printerHeader('metal.sidero.dev_servers.yaml', 'v1alpha2'));
    expect(kubectl('get', 'servers').split('\n')[0]?.split(/\s{2,}/)).toEqual(['NAME', 'HOSTNAME', 'ACCEPTED', 'CORDONED', 'ALLOCATED', 'CLEAN', 'POWER', 'AGE']);
    await custom.deleteClusterCustomObject({ group: 'metal.sidero.dev', version: 'v1alpha2', plural: 'servers', name: '4c4c4544-0047-3010-8052-b2c04f4c4d32' });
    await custom.deleteClusterCustomObject({ group: 'metal.sidero.dev', version: 'v1alpha2', plural: 'serverclasses', name: 'workers-x86' });
  });

  it('defaults a Metal3Cluster as CAPM3’s webhook does: port 6443, cloudProviderEnabled false', async () => {
    await applyObjects(kube.kc, [{ apiVersion: 'infrastructure.cluster.x-k8s.io/v1beta2', kind: 'Metal3Cluster', metadata: { name: 'defaults' }, spec: { controlPlaneEndpoint: { host: '192.168.111.249' } } } as KubernetesObject], { namespace: kube.namespace });
    const m3c = (await custom.getNamespacedCustomObject({ group: 'infrastructure.cluster.x-k8s.io', version: 'v1beta2', plural: 'metal3clusters', namespace: kube.namespace, name: 'defaults' })) as { spec: Record<string, unknown> };
    expect(m3c.spec).toEqual({ controlPlaneEndpoint: { host: '192.168.111.249', port: 6443 }, cloudProviderEnabled: false });
  });

  it('serves MachineHealthCheck v1beta1 and v1beta2, each read in its own version’s field names', async () => {
    await applyObjects(kube.kc, [
      { apiVersion: 'cluster.x-k8s.io/v1beta2', kind: 'MachineHealthCheck', metadata: { name: 'mhc-v2' }, spec: { clusterName: 'c1', selector: { matchLabels: { nodepool: 'np0' } }, checks: { nodeStartupTimeoutSeconds: 600, unhealthyNodeConditions: [{ type: 'Ready', status: 'False', timeoutSeconds: 300 }] }, remediation: { triggerIf: { unhealthyLessThanOrEqualTo: 2 } } } } as KubernetesObject,
    ], { namespace: kube.namespace });
    const v2 = (await custom.getNamespacedCustomObject({ group: 'cluster.x-k8s.io', version: 'v1beta2', plural: 'machinehealthchecks', namespace: kube.namespace, name: 'mhc-v2' })) as { spec: Record<string, unknown> };
    expect(v2.spec).toMatchObject({ checks: { nodeStartupTimeoutSeconds: 600, unhealthyNodeConditions: [{ timeoutSeconds: 300 }] }, remediation: { triggerIf: { unhealthyLessThanOrEqualTo: 2 } } });
    const v1 = (await custom.getNamespacedCustomObject({ group: 'cluster.x-k8s.io', version: 'v1beta1', plural: 'machinehealthchecks', namespace: kube.namespace, name: 'c1-workers' })) as { spec: Record<string, unknown> };
    // Stored as v1beta2 seconds, read back through upstream's conversion as Go durations.
    expect(v1.spec).toMatchObject({ maxUnhealthy: '40%', nodeStartupTimeout: '10m0s', unhealthyConditions: [{ type: 'Ready', status: 'Unknown', timeout: '5m0s' }, { type: 'Ready', status: 'False', timeout: '5m0s' }] });
  });

  // Each malformed manifest, and the field its refusal must name: upstream's
  // schema or webhook message for Cluster API kinds, Ironflow's own CRD for
  // BareMetalHost. (Ironflow's former extra rules that upstream does not have,
  // such as an enum on TalosConfig generateType, are gone: upstream accepts those.)
  const malformed: [string, Record<string, unknown>, RegExp][] = [
    ['BareMetalHost with a bad MAC', bmh('bad-mac', { bmc: goodBmc, bootMACAddress: '52:54:00:zz:00:01' }), /spec\.bootMACAddress.*must be a MAC address such as 52:54:00:12:34:56/],
    ['BareMetalHost without bmc.address', bmh('no-address', { bmc: { credentialsName: 'x' } }), /spec\.bmc\.address: Required value/],
    ['BareMetalHost with an unknown BMC scheme', bmh('bad-scheme', { bmc: { address: 'vnc://10.0.0.1', credentialsName: 'x' } }), /spec\.bmc\.address.*ipmi:\/\/host/],
    ['BareMetalHost with an unknown cleaning mode', bmh('bad-clean', { bmc: goodBmc, automatedCleaningMode: 'sometimes' }), /spec\.automatedCleaningMode: Unsupported value: "sometimes"/],
    ['BareMetalHost image without checksum', bmh('no-checksum', { bmc: goodBmc, image: { url: 'http://x/img.qcow2' } }), /spec\.image.*checksum is required/],
    ['MachineDeployment with negative replicas', md('neg', -1, { a: 'b' }, { a: 'b' }), /spec\.replicas: Invalid value: -1: should be a non-negative integer/],
    ['MachineDeployment whose selector misses its template', md('sel', 1, { nodepool: 'np0' }, { nodepool: 'np1' }), /validation\.machinedeployment\.cluster\.x-k8s\.io.*spec\.template\.metadata\.labels: Forbidden: must match spec\.selector/],
    ['MachineDeployment with maxSurge "lots"', { ...md('surge', 1, {}, {}), spec: { ...md('surge', 1, {}, {}).spec, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 'lots' } } } }, /spec\.rollout\.strategy\.rollingUpdate\.maxSurge: Invalid value: "lots": must be either an int or a percentage/],
    ['Machine without clusterName', { apiVersion: 'cluster.x-k8s.io/v1beta1', kind: 'Machine', metadata: { name: 'no-cluster' }, spec: { ...machineSpec('c1'), clusterName: undefined } }, /spec\.clusterName: Invalid value: "": spec\.clusterName in body should be at least 1 chars long/],
    ['MachineHealthCheck v1beta1 with maxUnhealthy "half"', { apiVersion: 'cluster.x-k8s.io/v1beta1', kind: 'MachineHealthCheck', metadata: { name: 'mhc-bad' }, spec: { clusterName: 'c1', selector: { matchLabels: { a: 'b' } }, maxUnhealthy: 'half' } }, /spec\.remediation\.triggerIf\.unhealthyLessThanOrEqualTo: Invalid value: "half": must be either an int or a percentage/],
    ['MachineHealthCheck with an empty selector', { apiVersion: 'cluster.x-k8s.io/v1beta2', kind: 'MachineHealthCheck', metadata: { name: 'mhc-bad2' }, spec: { clusterName: 'c1', selector: {} } }, /spec\.selector: Required value: selector must not be empty/],
    ['Cluster with a pod CIDR that is not a CIDR', { apiVersion: 'cluster.x-k8s.io/v1beta1', kind: 'Cluster', metadata: { name: 'bad-cidr' }, spec: { clusterNetwork: { pods: { cidrBlocks: ['192.168.0.0/33'] } } } }, /spec\.clusterNetwork\.pods\.cidrBlocks\[0\]: Invalid value: "192\.168\.0\.0\/33": invalid CIDR address/],
    ['Metal3MachineTemplate with neither image nor customDeploy (CAPM3 webhook)', { apiVersion: 'infrastructure.cluster.x-k8s.io/v1beta1', kind: 'Metal3MachineTemplate', metadata: { name: 'no-image' }, spec: { template: { spec: { hostSelector: {} } } } }, /validation\.metal3machinetemplate\.infrastructure\.cluster\.x-k8s\.io.*Spec\.Template\.Spec\.Image\.URL: Required value: cannot be empty/],
    ['Metal3Cluster without a controlPlaneEndpoint host (CAPM3 webhook)', { apiVersion: 'infrastructure.cluster.x-k8s.io/v1beta2', kind: 'Metal3Cluster', metadata: { name: 'no-host' }, spec: {} }, /validation\.metal3cluster\.infrastructure\.cluster\.x-k8s\.io.*spec\.controlPlaneEndpoint: Invalid value: "": is required/],
    ['KubeadmControlPlane with 2 replicas', { ...metal3Cluster[2], metadata: { name: 'even' }, spec: { ...(metal3Cluster[2] as { spec: object }).spec, replicas: 2 } }, /spec\.replicas: Forbidden: cannot be an even number when etcd is stacked/],
  ];
  it.each(malformed)('refuses a %s, naming the field to fix', async (_what, body, message) => {
    const attempt = applyObjects(kube.kc, [body as KubernetesObject], { namespace: kube.namespace });
    const err = await attempt.then(() => undefined, (e: unknown) => e);
    expect(err).toBeDefined();
    expect((err as { code?: number }).code).toBe(422);
    expect(refusalMessage(err)).toMatch(message);
    if (process.env.IRONFLOW_SHOW_REFUSALS) process.stdout.write(`${_what}: ${refusalMessage(err)}\n`);
  });
});
