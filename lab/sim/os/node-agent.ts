/**
 * A kwok-like kubelet: registers the server's Node in the workload cluster
 * and keeps it fresh (Ready condition heartbeat through the status
 * subresource, a Lease in kube-node-lease renewed at the same interval),
 * until its server powers off. No pods run; only the Node's view is real.
 *
 * Pods: each node runs one lab workload Pod (`lab-workload-<node>` in
 * `default`, owned by the ReplicaSet `lab-workload` so `kubectl drain` takes
 * it without --force), and every Pod bound to the node is reported Running.
 * A Pod being deleted (an eviction by `kubectl drain`, or a delete) is
 * finished the way a kubelet finishes it once its containers stopped: deleted
 * with grace period 0. So a drain completes, and the Pod is gone.
 *
 * Faults (api/lab.ts): node-never-ready registers Ready=False (KubeletNotReady)
 * and keeps saying so; node-notready-later is Ready for afterSeconds, then
 * posts Ready=Unknown (what the node lifecycle controller would write; the
 * lab's control plane runs no controller-manager) and stops renewing.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { LabServer } from '../../../api/lab';
import { expectStatus, kubeRestFromFile, type KubeRest } from './kube-rest';

export interface NodeAgentOptions {
  server: LabServer;
  /** Re-read on every failure: a restarted control plane listens on a new port. */
  kubeconfigPath: string;
  intervalMs: number;
  labels: Record<string, string>;
  /** nodeInfo.kubeletVersion / kubeProxyVersion: the version of the image the server runs. */
  kubeletVersion: string;
  signal: AbortSignal;
  log?: (line: string) => void;
}

const LEASE_SECONDS = 40;
/** metav1.MicroTime wants exactly six fractional digits. */
const microTime = (d: Date) => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
const rfc3339 = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

type Readiness = { status: 'True' | 'False' | 'Unknown'; reason: string; message: string };
const READY: Readiness = { status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status (ironflow lab)' };
const NEVER: Readiness = { status: 'False', reason: 'KubeletNotReady', message: 'container runtime network not ready: NetworkReady=false (lab fault node-never-ready)' };
const LOST: Readiness = { status: 'Unknown', reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status. (lab fault node-notready-later)' };

function nodeObject(s: LabServer, labels: Record<string, string>) {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: s.name,
      labels: { 'kubernetes.io/hostname': s.name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', 'ironflow.dev/lab': 'true', ...labels },
    },
  };
}

function nodeStatus(s: LabServer, r: Readiness, now: Date, since: Date, kubeletVersion: string) {
  const capacity = { cpu: String(s.cpus), memory: `${s.memoryMiB}Mi`, pods: '110' };
  return {
    status: {
      capacity,
      allocatable: capacity,
      addresses: [{ type: 'Hostname', address: s.name }],
      conditions: [{ type: 'Ready', ...r, lastHeartbeatTime: rfc3339(now), lastTransitionTime: rfc3339(since) }],
      nodeInfo: { kubeletVersion, kubeProxyVersion: kubeletVersion, operatingSystem: 'linux', architecture: 'amd64', osImage: 'Ironflow lab image', containerRuntimeVersion: 'ironflow-lab://1' },
    },
  };
}

/** Runs until the signal aborts (power off); never throws. */
export async function runNodeAgent(o: NodeAgentOptions): Promise<void> {
  const s = o.server;
  const faults = new Map((s.faults ?? []).map((f) => [f.fault, f]));
  const bootAt = Date.now();
  const lostAfterMs = faults.has('node-notready-later') ? (faults.get('node-notready-later')!.afterSeconds ?? 60) * 1000 : Infinity;
  let rest: KubeRest | undefined;
  let registered = false;
  let workloadStarted = false;
  let posted: Readiness | undefined;
  let since = new Date();
  let failures = 0;
  const leasePath = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${s.name}`;

  while (!o.signal.aborted) {
    const now = new Date();
    const lost = Date.now() - bootAt >= lostAfterMs;
    const want = faults.has('node-never-ready') ? NEVER : lost ? LOST : READY;
    try {
      rest ??= await kubeRestFromFile(o.kubeconfigPath);
      if (!registered) {
        expectStatus(`register Node ${s.name} at ${rest.server}`, await rest.call('POST', '/api/v1/nodes', nodeObject(s, o.labels)), [201, 409]);
        registered = true;
        o.log?.(`${s.name} os: Node registered at ${rest.server}`);
      }
      if (want !== posted) since = now;
      expectStatus(`post status of Node ${s.name}`, await rest.call('PATCH', `/api/v1/nodes/${s.name}/status`, nodeStatus(s, want, now, since, o.kubeletVersion)), [200]);
      if (!workloadStarted) {
        await startWorkload(rest, s.name);
        workloadStarted = true;
      }
      if (want !== NEVER) await syncPods(rest, s.name, o.log);
      if (want !== posted) o.log?.(`${s.name} os: Node Ready=${want.status} (${want.reason})`);
      posted = want;
      if (want === LOST) return; // a dead kubelet renews nothing more
      const renew = await rest.call('PATCH', leasePath, { spec: { holderIdentity: s.name, leaseDurationSeconds: LEASE_SECONDS, renewTime: microTime(now) } });
      if (renew.status === 404) {
        const lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: s.name, namespace: 'kube-node-lease' }, spec: { holderIdentity: s.name, leaseDurationSeconds: LEASE_SECONDS, renewTime: microTime(now) } };
        expectStatus(`create Lease kube-node-lease/${s.name}`, await rest.call('POST', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', lease), [201, 409]);
      } else expectStatus(`renew Lease kube-node-lease/${s.name}`, renew, [200]);
      failures = 0;
    } catch (err) {
      // The control plane may still be starting, or restarted on another port: retry with a fresh kubeconfig.
      if (failures++ % 10 === 0) o.log?.(`${s.name} os: node heartbeat failed (will retry): ${(err as Error).message}`);
      await rest?.close().catch(() => undefined);
      rest = undefined;
      registered = false;
    }
    await sleep(o.intervalMs, undefined, { signal: o.signal }).catch(() => undefined);
  }
  await rest?.close().catch(() => undefined);
}

const WORKLOAD = { namespace: 'default', replicaSet: 'lab-workload', labels: { app: 'lab-workload' } };

/** The node's lab workload: a Pod bound to it, owned by the lab-workload ReplicaSet (created if missing). */
async function startWorkload(rest: KubeRest, node: string): Promise<void> {
  // The ServiceAccount admission plugin wants the namespace's default account, which a controller-manager would create.
  const sa = { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default' } };
  expectStatus('create ServiceAccount default', await rest.call('POST', `/api/v1/namespaces/${WORKLOAD.namespace}/serviceaccounts`, sa), [201, 409]);
  const rsPath = `/apis/apps/v1/namespaces/${WORKLOAD.namespace}/replicasets`;
  const template = { metadata: { labels: WORKLOAD.labels }, spec: { containers: [{ name: 'workload', image: 'ironflow.dev/lab-workload:1' }] } };
  expectStatus('create ReplicaSet lab-workload', await rest.call('POST', rsPath, { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: WORKLOAD.replicaSet }, spec: { replicas: 0, selector: { matchLabels: WORKLOAD.labels }, template } }), [201, 409]);
  const rs = await rest.call('GET', `${rsPath}/${WORKLOAD.replicaSet}`);
  expectStatus('read ReplicaSet lab-workload', rs, [200]);
  const uid = (rs.json as { metadata: { uid: string } }).metadata.uid;
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `lab-workload-${node}`,
      labels: WORKLOAD.labels,
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: WORKLOAD.replicaSet, uid, controller: true, blockOwnerDeletion: true }],
    },
    spec: { ...template.spec, nodeName: node, terminationGracePeriodSeconds: 30, automountServiceAccountToken: false },
  };
  expectStatus(`create Pod lab-workload-${node}`, await rest.call('POST', `/api/v1/namespaces/${WORKLOAD.namespace}/pods`, pod), [201, 409]);
}

interface PodView {
  metadata: { name: string; namespace: string; uid: string; deletionTimestamp?: string };
  status?: { phase?: string };
}

/** What a kubelet does for the Pods bound to its node: run them (Running, Ready), and finish their deletion (eviction) once "stopped". */
async function syncPods(rest: KubeRest, node: string, log?: (line: string) => void): Promise<void> {
  const list = await rest.call('GET', `/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${node}`)}`);
  expectStatus(`list Pods on ${node}`, list, [200]);
  for (const p of (list.json as { items: PodView[] }).items) {
    const path = `/api/v1/namespaces/${p.metadata.namespace}/pods/${p.metadata.name}`;
    if (p.metadata.deletionTimestamp) {
      const del = await rest.call('DELETE', path, { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0, preconditions: { uid: p.metadata.uid } });
      expectStatus(`finish deletion of Pod ${p.metadata.namespace}/${p.metadata.name}`, del, [200, 404, 409]);
      log?.(`${node} os: Pod ${p.metadata.namespace}/${p.metadata.name} stopped and deleted (evicted or deleted)`);
    } else if (p.status?.phase !== 'Running') {
      const now = rfc3339(new Date());
      const ready = [{ type: 'Ready', status: 'True', lastTransitionTime: now }, { type: 'ContainersReady', status: 'True', lastTransitionTime: now }, { type: 'PodScheduled', status: 'True', lastTransitionTime: now }];
      expectStatus(`report Pod ${p.metadata.name} Running`, await rest.call('PATCH', `${path}/status`, { status: { phase: 'Running', startTime: now, conditions: ready } }), [200, 404]);
    }
  }
}
