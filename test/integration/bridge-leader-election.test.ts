/** Two bridges on one Lease: only the holder signals; when it stops, the standby takes over. */
import { setTimeout as sleep } from 'node:timers/promises';
import { CustomObjectsApi } from '@kubernetes/client-node';
import pino from 'pino';
import { workflowIdFor } from '../../api/names';
import { applyObjects } from '../../k8s-bridge/apply';
import { startBridge, type Bridge } from '../../k8s-bridge/bridge';
import { kubeTestContext, temporalTestContext, type KubeTestContext, type TemporalTestContext } from '../helpers/env';

const log = pino({ level: process.env.IRONFLOW_LOG_LEVEL ?? 'warn' });
const host = (name: string) => ({
  apiVersion: 'metal3.io/v1alpha1',
  kind: 'BareMetalHost',
  metadata: { name },
  spec: { online: true, bmc: { address: 'redfish+http://127.0.0.1:8000/redfish/v1/Systems/1', credentialsName: `${name}-bmc` } },
});

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (await check()) return Date.now() - t0;
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

describe('k8s-bridge leader election', () => {
  let kube: KubeTestContext;
  let temporal: TemporalTestContext;
  const bridges: Bridge[] = [];
  beforeAll(async () => {
    [kube, temporal] = await Promise.all([kubeTestContext('bridge-le'), temporalTestContext('bridge-le')]);
  });
  afterAll(async () => {
    await Promise.all(bridges.map((b) => b.stop()));
    await Promise.all([kube?.cleanup(), temporal?.close()]);
  });

  const leaseDurationSeconds = 3;
  const start = (identity: string) => {
    const b = startBridge({
      kc: kube.kc,
      client: temporal.client,
      taskQueue: temporal.taskQueue,
      namespace: kube.namespace,
      identity,
      log,
      leaderElection: { namespace: kube.namespace, name: 'bridge', leaseDurationSeconds, retryPeriodMs: 200 },
    });
    bridges.push(b);
    return b;
  };
  const running = async (name: string) =>
    temporal.client.workflow
      .getHandle(workflowIdFor('BareMetalHost', kube.namespace, name))
      .describe()
      .then((d) => d.status.name === 'RUNNING')
      .catch(() => false);

  it('only the leader signals; a released Lease is taken over at once, a crashed leader within the lease duration', async () => {
    const a = start('bridge-a');
    await a.ready;
    const b = start('bridge-b');
    await b.ready;
    expect([a.isLeader(), b.isLeader()]).toEqual([true, false]);

    await applyObjects(kube.kc, [host('le-01'), host('le-02')], { namespace: kube.namespace });
    await waitFor('le-01 and le-02 workflows', async () => (await running('le-01')) && (await running('le-02')), 10_000);
    await sleep(500);
    expect(a.stats().signals).toBeGreaterThanOrEqual(2);
    expect(b.stats().signals).toBe(0);

    // Clean stop: the leader releases the Lease and the standby takes it on its next try.
    await a.stop();
    const takeover = await waitFor('b to lead', () => b.isLeader(), leaseDurationSeconds * 1000);
    await applyObjects(kube.kc, [host('le-03')], { namespace: kube.namespace });
    await waitFor('le-03 workflow', () => running('le-03'), 10_000);
    expect(b.stats().signals).toBeGreaterThanOrEqual(3); // relisted le-01/02 on taking over, then le-03
    process.stdout.write(`leader election: takeover after release ${takeover} ms\n`);

    // A leader that vanishes without releasing (crash): its Lease is taken after it expires.
    const lease = kube.kc.makeApiClient(CustomObjectsApi);
    const held = (await lease.getNamespacedCustomObject({ group: 'coordination.k8s.io', version: 'v1', plural: 'leases', namespace: kube.namespace, name: 'bridge' })) as {
      spec: { holderIdentity: string; leaseTransitions: number };
    };
    expect(held.spec.holderIdentity).toBe('bridge-b');
    await b.stop();
    // Pretend b crashed: put its name back as holder with a fresh renewTime and nobody renewing.
    const now = new Date().toISOString().replace(/Z$/, '000Z');
    const current = (await lease.getNamespacedCustomObject({ group: 'coordination.k8s.io', version: 'v1', plural: 'leases', namespace: kube.namespace, name: 'bridge' })) as Record<string, unknown> & { spec: object };
    await lease.replaceNamespacedCustomObject({
      group: 'coordination.k8s.io',
      version: 'v1',
      plural: 'leases',
      namespace: kube.namespace,
      name: 'bridge',
      body: { ...current, spec: { ...current.spec, holderIdentity: 'bridge-b', leaseDurationSeconds, renewTime: now } },
    });
    const c = start('bridge-c');
    await c.ready;
    expect(c.isLeader()).toBe(false);
    const crashTakeover = await waitFor('c to lead', () => c.isLeader(), (leaseDurationSeconds + 2) * 1000);
    expect(crashTakeover).toBeGreaterThanOrEqual(leaseDurationSeconds * 1000 - 500);
    process.stdout.write(`leader election: takeover after a crash ${crashTakeover} ms (lease ${leaseDurationSeconds} s)\n`);
  });
});
