/**
 * The long timers of the host lifecycle (agent deadlines, error backoff) on
 * the time-skipping test server: 20 minutes of waiting take a second.
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import { HOST_MESSAGES, type HostStatus } from '../../api/host';
import { SEARCH_ATTRIBUTES } from '../../api/search-attributes';
import { workflowIdFor } from '../../api/names';
import { loadToolPaths } from '../../workers/embedded/tools';
import { createFakeWorld } from '../helpers/fake-host-activities';
import { observation, sharedBundle } from '../helpers/host-workflow-harness';

describe('hostLifecycle timers (time-skipping server)', () => {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: loadToolPaths().temporalTestServer } } });
    // The host workflow sets Ironflow's search attributes; this server must know them first.
    await env.connection.operatorService.addSearchAttributes({
      namespace: env.namespace ?? 'default',
      searchAttributes: Object.fromEntries(Object.keys(SEARCH_ATTRIBUTES).map((k) => [k, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD])),
    });
  });
  afterAll(async () => env?.teardown());

  it('turns an agent that never reports into an inspection error after 20 minutes, then retries with a fresh boot', async () => {
    const ref = { namespace: 'lab', name: 'silent-1' };
    const world = createFakeWorld(() => env.client, ref, { agentDelayMs: 0 });
    world.knobs.agentSilent = true;
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue: 'timeouts', workflowBundle: await sharedBundle(), activities: world.activities });
    await worker.runUntil(async () => {
      const obs = observation();
      const handle = await env.client.workflow.signalWithStart('hostLifecycle', {
        workflowId: workflowIdFor('BareMetalHost', ref.namespace, ref.name),
        taskQueue: 'timeouts',
        args: [{ ref, observation: obs }],
        signal: HOST_MESSAGES.observed,
        signalArgs: [obs],
      });
      // Sleeping on the time-skipping server advances its clock past the agent deadline.
      // The deadline runs from power-on (t = 0 here); the first retry comes 10 s after it.
      await env.sleep('20 minutes');
      await env.sleep('3 seconds');
      const failed = await handle.query<HostStatus>(HOST_MESSAGES.status);
      expect(failed.errorType).toBe('inspection error');
      expect(failed.errorMessage).toContain('did not report inspect within 20 minutes');
      const bootsBefore = world.bootModes.filter((m) => m === 'agent').length;
      world.knobs.agentSilent = false;
      // The first backoff is 10 s; after it the inspection runs again with a new boot.
      await env.sleep('15 seconds');
      const ok = await handle.query<HostStatus>(HOST_MESSAGES.status);
      expect(world.bootModes.filter((m) => m === 'agent').length).toBe(bootsBefore + 1);
      expect(ok.provisioning.state).toBe('available');
    });
  }, 60_000);
});
