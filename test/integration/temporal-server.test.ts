import { randomUUID } from 'node:crypto';
import { Worker } from '@temporalio/worker';
import { createProbeActivities } from '../../activities';
import { planeProbe } from '../../workflows';
import { WORKFLOWS_PATH } from '../../workers/lifecycle-worker';
import { temporalTestContext, type TemporalTestContext } from '../helpers/env';

describe('the real Temporal dev server', () => {
  let ctx: TemporalTestContext;
  beforeAll(async () => {
    ctx = await temporalTestContext('temporal');
  });
  afterAll(async () => ctx?.close());

  it('runs a workflow and its activity through a worker, and keeps the history', async () => {
    const worker = await Worker.create({
      connection: ctx.nativeConnection,
      namespace: ctx.namespace,
      taskQueue: ctx.taskQueue,
      workflowsPath: WORKFLOWS_PATH,
      activities: createProbeActivities(),
    });
    const nonce = randomUUID();
    const workflowId = `probe-${nonce}`;
    const result = await worker.runUntil(
      ctx.client.workflow.execute(planeProbe, { taskQueue: ctx.taskQueue, workflowId, args: [{ nonce }] }),
    );
    expect(result).toEqual({ nonce, worker: ctx.taskQueue });

    const history = await ctx.client.workflow.getHandle(workflowId).fetchHistory();
    const types = (history.events ?? []).map((e) => e.eventType);
    // 10 = ACTIVITY_TASK_COMPLETED, 2 = WORKFLOW_EXECUTION_COMPLETED (proto enum values)
    expect(types).toContain(10);
    expect(types[types.length - 1]).toBe(2);
  });
});
