/**
 * Names shared by every Ironflow process: workflow ids, task queues, search
 * attributes. Workflows, the bridge, workers, CLI and tests import them from
 * here so no id is spelled twice.
 */

/** Task queues. Hardware-touching activities get their own queue so a slow BMC
 *  fleet cannot starve workflow tasks, and so production can run them on hosts
 *  with a leg in the provisioning network. */
export const TASK_QUEUES = {
  /** Workflow tasks of every lifecycle (hosts, clusters, machines, MHCs). */
  lifecycle: 'ironflow-lifecycle',
  /** Activities that talk to BMCs, PXE services and agents. */
  hardware: 'ironflow-hardware',
  /** Activities that write to Kubernetes (status, claims, secrets). */
  kube: 'ironflow-kube',
} as const;
export type TaskQueue = (typeof TASK_QUEUES)[keyof typeof TASK_QUEUES];

/** The kinds that each map to one long-lived workflow, with the prefix of its id. */
export const WORKFLOW_ID_PREFIX = {
  BareMetalHost: 'host',
  Cluster: 'cluster',
  KubeadmControlPlane: 'kubeadmcontrolplane',
  TalosControlPlane: 'taloscontrolplane',
  MachineDeployment: 'machinedeployment',
  MachineSet: 'machineset',
  Machine: 'machine',
  MachineHealthCheck: 'mhc',
} as const;
export type EntityKind = keyof typeof WORKFLOW_ID_PREFIX;

/** `host/<namespace>/<name>` and friends: stable, so signal-with-start is idempotent. */
export function workflowIdFor(kind: EntityKind, namespace: string, name: string): string {
  return `${WORKFLOW_ID_PREFIX[kind]}/${namespace}/${name}`;
}

/** Inverse of {@link workflowIdFor}; undefined for ids Ironflow did not make. */
export function parseWorkflowId(id: string): { kind: EntityKind; namespace: string; name: string } | undefined {
  const [prefix, namespace, name, ...rest] = id.split('/');
  if (!prefix || !namespace || !name || rest.length > 0) return undefined;
  const kind = (Object.keys(WORKFLOW_ID_PREFIX) as EntityKind[]).find((k) => WORKFLOW_ID_PREFIX[k] === prefix);
  return kind ? { kind, namespace, name } : undefined;
}

/** Id of the readiness probe the management plane runs through its own worker. */
export const PLANE_PROBE_WORKFLOW_PREFIX = 'ironflow-plane-probe';
