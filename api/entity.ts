/**
 * The Cluster API side of Ironflow: one long-lived workflow per object of the
 * kinds below (id `<prefix>/<namespace>/<name>`, api/names.ts), started and
 * signalled by the k8s-bridge exactly as host workflows are. Workflows talk
 * to each other through objects (a MachineDeployment workflow creates
 * MachineSets and Machines; the bridge starts their workflows), never by
 * calling each other, so `kubectl get machines -w` shows what Cluster API
 * users expect.
 *
 * Only references and non-secret fields travel here: bootstrap data,
 * kubeconfigs and user data stay in Secrets that activities read.
 */
import type { KindName } from './kinds';

/** Kinds that each have a workflow of their own, with the workflow type that runs it. */
export const ENTITY_WORKFLOWS = {
  Cluster: 'clusterLifecycle',
  KubeadmControlPlane: 'controlPlaneLifecycle',
  TalosControlPlane: 'controlPlaneLifecycle',
  MachineDeployment: 'machineDeploymentLifecycle',
  MachineSet: 'machineSetLifecycle',
  Machine: 'machineLifecycle',
  MachineHealthCheck: 'machineHealthCheckLifecycle',
} as const satisfies Partial<Record<KindName, string>>;
export type EntityKindName = keyof typeof ENTITY_WORKFLOWS;

/** The finalizers Cluster API puts on these kinds; the bridge adds them, the kind's workflow removes them when done. */
export const ENTITY_FINALIZERS: Record<EntityKindName, string> = {
  Cluster: 'cluster.cluster.x-k8s.io',
  KubeadmControlPlane: 'kubeadm.controlplane.cluster.x-k8s.io',
  TalosControlPlane: 'talos.controlplane.cluster.x-k8s.io',
  MachineDeployment: 'cluster.x-k8s.io/machinedeployment',
  MachineSet: 'cluster.x-k8s.io/machineset',
  Machine: 'machine.cluster.x-k8s.io',
  MachineHealthCheck: 'machinehealthcheck.cluster.x-k8s.io',
};

/** Labels Cluster API sets and selects by. */
export const CAPI_LABELS = {
  clusterName: 'cluster.x-k8s.io/cluster-name',
  controlPlane: 'cluster.x-k8s.io/control-plane',
  controlPlaneName: 'cluster.x-k8s.io/control-plane-name',
  deploymentName: 'cluster.x-k8s.io/deployment-name',
  setName: 'cluster.x-k8s.io/set-name',
  machineDeploymentUniqueLabel: 'machine-template-hash',
} as const;

/** Annotations Cluster API reads and writes. */
export const CAPI_ANNOTATIONS = {
  paused: 'cluster.x-k8s.io/paused',
  deleteMachine: 'cluster.x-k8s.io/delete-machine',
  revision: 'machinedeployment.clusters.x-k8s.io/revision',
  desiredReplicas: 'machinedeployment.clusters.x-k8s.io/desired-replicas',
  maxReplicas: 'machinedeployment.clusters.x-k8s.io/max-replicas',
  excludeNodeDraining: 'machine.cluster.x-k8s.io/exclude-node-draining',
} as const;

/** An owner reference as Kubernetes stores it. */
export interface OwnerRef {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

/** Metadata of an entity as the bridge passes it on. */
export interface EntityMeta {
  name: string;
  namespace: string;
  uid: string;
  generation: number;
  resourceVersion: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  ownerReferences: OwnerRef[];
  /** metadata.deletionTimestamp is set (Ironflow's finalizer holds the object). */
  deleting: boolean;
}

/**
 * One observation of an entity object, sent by the bridge on every change of
 * what its workflow acts on (spec, metadata; not status). `spec` is the
 * object's spec as served in KINDS[kind].version, passed through as is.
 */
export interface EntityObservation<Spec = Record<string, unknown>> {
  kind: EntityKindName;
  apiVersion: string;
  metadata: EntityMeta;
  spec: Spec;
}

export interface EntityWorkflowInput<Spec = Record<string, unknown>> {
  observation: EntityObservation<Spec>;
  /** The object's status as last recorded: a new run adopts from it, as host workflows do. */
  recorded?: Record<string, unknown>;
  /** Carried across continue-as-new (JSON-plain; each workflow defines its own shape). */
  carried?: unknown;
  /** Continue as new past this many events while waiting (tests set it low). */
  historyLimit?: number;
}

/** Signal/query names every entity workflow defines (same names as the host workflow's). */
export const ENTITY_MESSAGES = {
  observed: 'entityObserved',
  /** Something an entity watches changed (a child object, a host, a node): re-evaluate now. */
  poke: 'poke',
  status: 'entityStatus',
} as const;

/** What every entity workflow's status query answers, beside its own status. */
export interface EntityStatusView {
  phase?: string;
  /** What the workflow is waiting for, in words (e.g. "no available BareMetalHost matches hostSelector"). */
  waitingFor?: string;
  status: Record<string, unknown>;
}
