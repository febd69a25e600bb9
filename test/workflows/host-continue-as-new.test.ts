/**
 * Long error loops on the time-skipping test server: every wait checks the
 * history length and continues as new, carrying what the object does not
 * record (here: an erase approval), so no run's history grows without end.
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import type { Client } from '@temporalio/client';
import type { temporal as proto } from '@temporalio/proto';
import { HOST_MESSAGES, type HostStatus } from '../../api/host';
import { SEARCH_ATTRIBUTES } from '../../api/search-attributes';
import { workflowIdFor } from '../../api/names';
import { loadToolPaths } from '../../workers/embedded/tools';
import { createFakeWorld } from '../helpers/fake-host-activities';
import { IMAGE, observation, sharedBundle } from '../helpers/host-workflow-harness';

/** History lengths of every run of `workflowId`, first to last, following continue-as-new. */
async function runLengths(client: Client, workflowId: string, firstRunId: string): Promise<number[]> {
  const lengths: number[] = [];
  let runId: string | undefined = firstRunId;
  while (runId) {
    const history: proto.api.history.v1.IHistory = await client.workflow.getHandle(workflowId, runId).fetchHistory();
    const events: proto.api.history.v1.IHistoryEvent[] = history.events ?? [];
    lengths.push(events.length);
    const last: proto.api.history.v1.IHistoryEvent | undefined = events[events.length - 1];
    runId = last?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
  }
  return lengths;
}

describe('hostLifecycle continues as new in every wait (time-skipping server)', () => {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: loadToolPaths().temporalTestServer } } });
    await env.connection.operatorService.addSearchAttributes({
      namespace: env.namespace ?? 'default',
      searchAttributes: Object.fromEntries(Object.keys(SEARCH_ATTRIBUTES).map((k) => [k, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD])),
    });
  });
  afterAll(async () => env?.teardown());

  async function start(name: string, first: ReturnType<typeof observation>, historyLimit: number, taskQueue: string) {
    const ref = { namespace: 'lab', name };
    const world = createFakeWorld(() => env.client, ref, { agentDelayMs: 0 });
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: await sharedBundle(), activities: world.activities });
    const workflowId = workflowIdFor('BareMetalHost', ref.namespace, ref.name);
    return { world, worker, workflowId, ref, historyLimit };
  }

  it('1,000 failed retries of a step never grow one run past its history limit', async () => {
    const limit = 200;
    const first = observation();
    const { world, worker, workflowId, ref } = await start('retry-1000', first, limit, 'can-1000');
    world.knobs.credentialsMissing = true;
    await worker.runUntil(async () => {
      const handle = await env.client.workflow.signalWithStart('hostLifecycle', {
        workflowId, taskQueue: 'can-1000', args: [{ ref, observation: first, historyLimit: limit }], signal: HOST_MESSAGES.observed, signalArgs: [first],
      });
      const firstRunId = (handle as typeof handle & { signaledRunId: string }).signaledRunId;
      // Each retry waits at most 12 minutes (10 min cap + 20 % jitter): 1,000 of them fit in 9 days.
      const deadline = Date.now() + 240_000;
      while (world.calls.filter((c) => c === 'bmcCheckAccess').length < 1000 && Date.now() < deadline) await env.sleep('1 day');
      const retries = world.calls.filter((c) => c === 'bmcCheckAccess').length;
      expect(retries).toBeGreaterThanOrEqual(1000);
      const status = await env.client.workflow.getHandle(workflowId).query<HostStatus>(HOST_MESSAGES.status);
      expect(status.errorType).toBe('registration error');
      expect(status.errorCount).toBe(retries);
      const lengths = await runLengths(env.client, workflowId, firstRunId);
      // A run continues as new at its first wait past the limit: one retry (a handful of events) over it at most.
      expect(Math.max(...lengths)).toBeLessThanOrEqual(limit + 25);
      expect(lengths.length).toBeGreaterThan(10);
      // A workflow task left without a worker would stop the server skipping time for the next test.
      await env.client.workflow.getHandle(workflowId).terminate('test done');
    });
  }, 300_000);

  it('an erase that keeps failing continues as new with its approval, and erases without asking again once it works', async () => {
    const first = observation({ image: IMAGE }, { preciousData: true });
    const { world, worker, workflowId, ref } = await start('approval-can', first, 60, 'can-approval');
    await worker.runUntil(async () => {
      const handle = await env.client.workflow.signalWithStart('hostLifecycle', {
        workflowId, taskQueue: 'can-approval', args: [{ ref, observation: first, historyLimit: 60 }], signal: HOST_MESSAGES.observed, signalArgs: [first],
      });
      const firstRunId = (handle as typeof handle & { signaledRunId: string }).signaledRunId;
      const waitState = async (pred: (s: HostStatus & { waitingFor?: string }) => boolean, what: string) => {
        const deadline = Date.now() + 60_000;
        for (;;) {
          const s = await env.client.workflow.getHandle(workflowId).query<HostStatus & { waitingFor?: string }>(HOST_MESSAGES.status);
          if (pred(s)) return s;
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(s)}`);
          await env.sleep('5 seconds');
        }
      };
      await waitState((s) => s.provisioning.state === 'provisioned', 'provisioned');
      world.knobs.agentFails.erase = { message: 'agent lost its network', keep: true };
      await env.client.workflow.getHandle(workflowId).signal(HOST_MESSAGES.observed, observation({}, { preciousData: true }));
      await waitState((s) => s.operationalStatus === 'delayed', 'waiting for approval');
      await env.client.workflow.getHandle(workflowId).executeUpdate(HOST_MESSAGES.approveErase, { args: [{ approver: 'alice@dc1', reason: 'RMA' }] });
      // Erase attempts fail over and over for a few virtual hours: several continue-as-new.
      await env.sleep('6 hours');
      const failing = await waitState((s) => s.errorType === 'deprovisioning error', 'deprovisioning error');
      expect(failing.errorCount).toBeGreaterThan(5);
      const lengths = await runLengths(env.client, workflowId, firstRunId);
      expect(lengths.length).toBeGreaterThan(2);
      delete world.knobs.agentFails.erase;
      const done = await waitState((s) => s.provisioning.state === 'available', 'available after the erase');
      expect(done.lastApproval).toMatchObject({ action: 'erase', approver: 'alice@dc1' });
      // No second approval was asked for: the carried one was used.
      expect(world.commands.filter((c) => c.type === 'erase').length).toBe(failing.errorCount + 1);
    });
  }, 180_000);
});
