import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from '@temporalio/worker';
import { createProbeActivities } from '../../activities';
import { WORKFLOWS_PATH } from '../../workers/lifecycle-worker';
import { sharedEnv, temporalTestContext } from '../helpers/env';
import { scanForSecrets } from '../helpers/secret-scan';

// Negative control for the end-of-run secret scan: a value that IS in a
// history and in a log must be found (it is not registered as a test
// secret, so the global scan does not fail on it).
it('finds a secret placed in a workflow input and in a log file', async () => {
  const ctx = await temporalTestContext('scan');
  const planted = `planted-${randomBytes(8).toString('hex')}`;
  try {
    const worker = await Worker.create({ connection: ctx.nativeConnection, namespace: ctx.namespace, taskQueue: ctx.taskQueue, workflowsPath: WORKFLOWS_PATH, activities: createProbeActivities() });
    const workflowId = `scan-${randomUUID()}`;
    await worker.runUntil(ctx.client.workflow.execute('planeProbe', { taskQueue: ctx.taskQueue, workflowId, args: [{ nonce: planted }] }));
    const logDir = mkdtempSync(join(tmpdir(), 'scan-'));
    writeFileSync(join(logDir, 'a.log'), `{"msg":"oops","value":"${planted}"}\n`);
    const env = sharedEnv();
    const result = await scanForSecrets({ temporalAddress: env.temporalAddress, namespace: env.temporalNamespace, logDir, secrets: [planted] });
    expect(result.hits).toEqual(expect.arrayContaining([expect.stringContaining(workflowId), expect.stringContaining('a.log')]));
  } finally {
    await ctx.close();
  }
});
