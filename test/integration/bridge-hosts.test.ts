/**
 * The bridge against the real kube-apiserver and the real Temporal server:
 * no worker polls the test's task queue, so a started host workflow simply
 * waits, and its history shows exactly what the bridge sent.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { defaultPayloadConverter } from '@temporalio/common';
import pino from 'pino';
import { HOST_FINALIZER, HOST_MESSAGES, type HostObservation } from '../../api/host';
import { workflowIdFor } from '../../api/names';
import { applyObjects, readManifests } from '../../k8s-bridge/apply';
import { startBridge, type Bridge } from '../../k8s-bridge/bridge';
import { removeFinalizer } from '../../k8s-bridge/finalizers';
import { loadToolPaths } from '../../workers/embedded/tools';
import { kubeTestContext, sharedEnv, temporalTestContext, type KubeTestContext, type TemporalTestContext } from '../helpers/env';

const BMH = { group: 'metal3.io', version: 'v1alpha1', plural: 'baremetalhosts' };
const MANIFESTS = join(__dirname, '..', '..', '..', 'shared', 'testdata', 'manifests', 'metal3');
const log = pino({ level: process.env.IRONFLOW_LOG_LEVEL ?? 'warn' });

async function observationsOf(t: TemporalTestContext, workflowId: string): Promise<HostObservation[]> {
  const history = await t.client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? [])
    .filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === HOST_MESSAGES.observed)
    .map((e) => defaultPayloadConverter.fromPayload(e.workflowExecutionSignaledEventAttributes?.input?.payloads?.[0] ?? {}) as HostObservation);
}

async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

const bmh = (name: string, spec: Record<string, unknown> = {}) => ({
  apiVersion: 'metal3.io/v1alpha1',
  kind: 'BareMetalHost',
  metadata: { name },
  spec: { online: true, bmc: { address: `ipmi://127.0.0.1:6230`, credentialsName: `${name}-bmc` }, ...spec },
});

describe('k8s-bridge: BareMetalHost -> host workflow', () => {
  let kube: KubeTestContext;
  let temporal: TemporalTestContext;
  let custom: CustomObjectsApi;
  const bridges: Bridge[] = [];
  beforeAll(async () => {
    [kube, temporal] = await Promise.all([kubeTestContext('bridge'), temporalTestContext('bridge')]);
    custom = kube.kc.makeApiClient(CustomObjectsApi);
  });
  afterAll(async () => {
    await Promise.all(bridges.map((b) => b.stop()));
    await Promise.all([kube?.cleanup(), temporal?.close()]);
  });
  const start = (extra: Partial<Parameters<typeof startBridge>[0]> = {}) => {
    const b = startBridge({ kc: kube.kc, client: temporal.client, taskQueue: temporal.taskQueue, namespace: kube.namespace, log, ...extra });
    bridges.push(b);
    return b;
  };
  const getHost = async (name: string) =>
    (await custom.getNamespacedCustomObject({ ...BMH, namespace: kube.namespace, name })) as {
      metadata: { resourceVersion: string; finalizers?: string[]; deletionTimestamp?: string };
    };

  it('kubectl apply of the Metal3 example host + Secret starts exactly one running workflow, adds the finalizer; a spec edit signals it; a delete signals deleting', async () => {
    // The upstream example, unchanged (bmo-example-host.yaml: Secret + BareMetalHost), with kubectl itself.
    execFileSync(loadToolPaths().kubectl, ['--kubeconfig', sharedEnv().kubeconfig, '-n', kube.namespace, 'apply', '-f', join(MANIFESTS, 'bmo-example-host.yaml')], { encoding: 'utf8' });
    const bridge = start();
    await bridge.ready;
    const id = workflowIdFor('BareMetalHost', kube.namespace, 'example-baremetalhost');
    const handle = temporal.client.workflow.getHandle(id);
    const first = await handle.describe();
    expect(first.status.name).toBe('RUNNING');
    expect(first.type).toBe('hostLifecycle');
    expect(first.taskQueue).toBe(temporal.taskQueue);

    const host = await eventually('finalizer', async () => {
      const h = await getHost('example-baremetalhost');
      return h.metadata.finalizers?.includes(HOST_FINALIZER) ? h : undefined;
    });
    const observed = await observationsOf(temporal, id);
    expect(observed).toHaveLength(1); // the echo of our own finalizer patch is not signalled again
    expect(observed[0]).toMatchObject({
      resourceVersion: host.metadata.resourceVersion,
      deleting: false,
      spec: { online: true, bmc: { address: 'ipmi://192.168.122.1:6233', credentialsName: 'example-baremetalhost-secret' } },
    });
    // The BMC password never reaches the workflow history.
    expect(JSON.stringify(await handle.fetchHistory())).not.toContain('1f2d1e2e67df');

    await custom.patchNamespacedCustomObject(
      { ...BMH, namespace: kube.namespace, name: 'example-baremetalhost', body: { spec: { online: false } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const edited = await getHost('example-baremetalhost');
    const afterEdit = await eventually('signal with online=false', async () => {
      const all = await observationsOf(temporal, id);
      return all.at(-1)?.resourceVersion === edited.metadata.resourceVersion ? all : undefined;
    });
    expect(afterEdit.at(-1)?.spec.online).toBe(false);
    expect((await handle.describe()).runId).toBe(first.runId);

    // Delete: the finalizer holds the object, the workflow is told; releasing it is the workflow's job.
    await custom.deleteNamespacedCustomObject({ ...BMH, namespace: kube.namespace, name: 'example-baremetalhost' });
    const deleting = await eventually('deleting signal', async () => {
      const last = (await observationsOf(temporal, id)).at(-1);
      return last?.deleting ? last : undefined;
    });
    expect(deleting.spec.online).toBe(false);
    expect((await getHost('example-baremetalhost')).metadata.deletionTimestamp).toBeDefined();
    expect(await removeFinalizer(kube.kc, { namespace: kube.namespace, name: 'example-baremetalhost' })).toBe('removed');
    await eventually('object gone', async () => getHost('example-baremetalhost').then(() => undefined, (e: { code?: number }) => (e.code === 404 ? true : undefined)));
    expect(await removeFinalizer(kube.kc, { namespace: kube.namespace, name: 'example-baremetalhost' })).toBe('gone');
    // The object vanishing did not start a second run.
    await sleep(500);
    expect((await handle.describe()).runId).toBe(first.runId);
    await bridge.stop();
  });

  it('a host whose Secret lacks the password still gets its workflow (the workflow reports the registration error) and the bridge keeps going', async () => {
    const objects = readManifests(join(MANIFESTS, 'bmo-example-host-bad-credentials.yaml')).map((o) =>
      o.kind === 'BareMetalHost' ? { ...o, metadata: { ...o.metadata, name: 'bad-credentials-host' } } : o,
    );
    const bridge = start();
    await bridge.ready;
    await applyObjects(kube.kc, objects, { namespace: kube.namespace });
    const id = workflowIdFor('BareMetalHost', kube.namespace, 'bad-credentials-host');
    await eventually('workflow started', async () => ((await temporal.client.workflow.getHandle(id).describe()).status.name === 'RUNNING' ? true : undefined));
    expect(bridge.isLeader()).toBe(true);
    await bridge.stop();
  });

  it('50 objects changing while the bridge restarts: one workflow each, whose last signal carries the latest resourceVersion and spec', async () => {
    const names = Array.from({ length: 50 }, (_, i) => `rs-${String(i).padStart(2, '0')}`);
    await applyObjects(kube.kc, names.map((n) => bmh(n)), { namespace: kube.namespace });
    let bridge = start({ concurrency: 8 });
    await bridge.ready;
    const runIds = new Map<string, string>();
    for (const n of names) runIds.set(n, (await temporal.client.workflow.getHandle(workflowIdFor('BareMetalHost', kube.namespace, n)).describe()).runId);

    const edit = (n: string, round: number) =>
      custom.patchNamespacedCustomObject(
        { ...BMH, namespace: kube.namespace, name: n, body: { spec: { description: `round ${round}`, online: round % 2 === 0 } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    // Edits keep landing while the first bridge stops and a second one starts.
    const edits = (async () => {
      for (let round = 1; round <= 6; round++) {
        await Promise.all(names.map((n) => edit(n, round)));
        await sleep(50);
      }
    })();
    await sleep(150);
    await bridge.stop();
    await sleep(100);
    bridge = start({ concurrency: 8 });
    await edits;
    await bridge.ready;

    for (const n of names) {
      const id = workflowIdFor('BareMetalHost', kube.namespace, n);
      const current = await getHost(n);
      const last = await eventually(`${id} caught up`, async () => {
        const l = (await observationsOf(temporal, id)).at(-1);
        return l?.resourceVersion === current.metadata.resourceVersion ? l : undefined;
      });
      expect(last.spec.online).toBe(true); // round 6 is even
      expect((await temporal.client.workflow.getHandle(id).describe()).runId).toBe(runIds.get(n));
    }
    // Exactly one execution per object on this task queue (visibility is eventually consistent).
    const count = await eventually('visibility count', async () => {
      const c = await temporal.client.workflow.count(`TaskQueue = '${temporal.taskQueue}' AND WorkflowId STARTS_WITH 'host/${kube.namespace}/rs-'`);
      return c.count === 50 ? c.count : undefined;
    });
    expect(count).toBe(50);
    await bridge.stop();
  });

  it('a host workflow an operator terminated is started again by the resync, from the object\'s recorded status', async () => {
    const name = 'resync-1';
    await custom.createNamespacedCustomObject({ ...BMH, namespace: kube.namespace, body: bmh(name) });
    const status = {
      provisioning: { state: 'provisioned', image: { url: 'http://img/os.img', checksum: 'a'.repeat(64) } },
      operationalStatus: 'OK', errorCount: 0, poweredOn: true, lastUpdated: '2026-11-30T00:00:00Z',
    };
    await custom.patchNamespacedCustomObjectStatus(
      { ...BMH, namespace: kube.namespace, name, body: { status } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const bridge = start({ resyncIntervalMs: 500 });
    await bridge.ready;
    const workflowId = workflowIdFor('BareMetalHost', kube.namespace, name);
    const handle = temporal.client.workflow.getHandle(workflowId);
    const first = await eventually('first run', async () => {
      const d = await handle.describe();
      return d.status.name === 'RUNNING' ? d.runId : undefined;
    });
    await handle.terminate('operator pressed Terminate');
    const second = await eventually('a new run after the resync', async () => {
      const d = await temporal.client.workflow.getHandle(workflowId).describe();
      return d.status.name === 'RUNNING' && d.runId !== first ? d.runId : undefined;
    });
    const history = await temporal.client.workflow.getHandle(workflowId, second).fetchHistory();
    const started = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
    const input = defaultPayloadConverter.fromPayload(started ?? {}) as { recorded?: { provisioning: { state: string; image?: { url: string } } } };
    expect(input.recorded?.provisioning).toEqual(status.provisioning);
    expect(bridge.stats().restarted).toBeGreaterThanOrEqual(1);
    await bridge.stop();
  });
});
