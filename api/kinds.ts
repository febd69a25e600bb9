/**
 * Every Kubernetes kind Ironflow reads or writes, with the API version it
 * uses (the storage version upstream serves: what the conversion webhook
 * leaves untouched). Workflows, activities, the bridge and tests name kinds
 * from here; no group/version/plural is spelled twice.
 */
export interface KindRef {
  group: string;
  version: string;
  plural: string;
  kind: string;
}

const k = (group: string, version: string, kind: string, plural: string): KindRef => ({ group, version, plural, kind });

const CAPI = 'cluster.x-k8s.io';
const INFRA = 'infrastructure.cluster.x-k8s.io';
const BOOTSTRAP = 'bootstrap.cluster.x-k8s.io';
const CONTROLPLANE = 'controlplane.cluster.x-k8s.io';

export const KINDS = {
  // Cluster API core (v1beta2 storage).
  Cluster: k(CAPI, 'v1beta2', 'Cluster', 'clusters'),
  Machine: k(CAPI, 'v1beta2', 'Machine', 'machines'),
  MachineSet: k(CAPI, 'v1beta2', 'MachineSet', 'machinesets'),
  MachineDeployment: k(CAPI, 'v1beta2', 'MachineDeployment', 'machinedeployments'),
  MachineHealthCheck: k(CAPI, 'v1beta2', 'MachineHealthCheck', 'machinehealthchecks'),
  // Control planes.
  KubeadmControlPlane: k(CONTROLPLANE, 'v1beta2', 'KubeadmControlPlane', 'kubeadmcontrolplanes'),
  TalosControlPlane: k(CONTROLPLANE, 'v1alpha3', 'TalosControlPlane', 'taloscontrolplanes'),
  // Bootstrap.
  KubeadmConfig: k(BOOTSTRAP, 'v1beta2', 'KubeadmConfig', 'kubeadmconfigs'),
  KubeadmConfigTemplate: k(BOOTSTRAP, 'v1beta2', 'KubeadmConfigTemplate', 'kubeadmconfigtemplates'),
  TalosConfig: k(BOOTSTRAP, 'v1alpha3', 'TalosConfig', 'talosconfigs'),
  TalosConfigTemplate: k(BOOTSTRAP, 'v1alpha3', 'TalosConfigTemplate', 'talosconfigtemplates'),
  // Metal3 infrastructure (CAPM3).
  Metal3Cluster: k(INFRA, 'v1beta2', 'Metal3Cluster', 'metal3clusters'),
  Metal3Machine: k(INFRA, 'v1beta2', 'Metal3Machine', 'metal3machines'),
  Metal3MachineTemplate: k(INFRA, 'v1beta2', 'Metal3MachineTemplate', 'metal3machinetemplates'),
  Metal3DataTemplate: k(INFRA, 'v1beta2', 'Metal3DataTemplate', 'metal3datatemplates'),
  Metal3Data: k(INFRA, 'v1beta2', 'Metal3Data', 'metal3datas'),
  Metal3DataClaim: k(INFRA, 'v1beta2', 'Metal3DataClaim', 'metal3dataclaims'),
  Metal3Remediation: k(INFRA, 'v1beta2', 'Metal3Remediation', 'metal3remediations'),
  Metal3RemediationTemplate: k(INFRA, 'v1beta2', 'Metal3RemediationTemplate', 'metal3remediationtemplates'),
  // Sidero infrastructure (CAPS) and its metal kinds.
  MetalCluster: k(INFRA, 'v1alpha3', 'MetalCluster', 'metalclusters'),
  MetalMachine: k(INFRA, 'v1alpha3', 'MetalMachine', 'metalmachines'),
  MetalMachineTemplate: k(INFRA, 'v1alpha3', 'MetalMachineTemplate', 'metalmachinetemplates'),
  ServerBinding: k(INFRA, 'v1alpha3', 'ServerBinding', 'serverbindings'),
  Server: k('metal.sidero.dev', 'v1alpha2', 'Server', 'servers'),
  ServerClass: k('metal.sidero.dev', 'v1alpha2', 'ServerClass', 'serverclasses'),
  // Metal3 hosts (BMO).
  BareMetalHost: k('metal3.io', 'v1alpha1', 'BareMetalHost', 'baremetalhosts'),
  HardwareData: k('metal3.io', 'v1alpha1', 'HardwareData', 'hardwaredata'),
} as const satisfies Record<string, KindRef>;
export type KindName = keyof typeof KINDS;

/** `group/version` as an object's apiVersion says it. */
export const apiVersionOf = (r: KindRef): string => `${r.group}/${r.version}`;

/** The kind a `{apiVersion|apiGroup, kind}` reference names, if Ironflow knows it (any served version). */
export function kindOfRef(ref: { apiVersion?: string; apiGroup?: string; kind: string }): KindRef | undefined {
  const group = ref.apiGroup ?? ref.apiVersion?.split('/')[0];
  return Object.values(KINDS).find((r) => r.kind === ref.kind && r.group === group);
}
