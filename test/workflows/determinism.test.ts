import { join } from 'node:path';
import { DeterminismViolationError } from '@temporalio/workflow';
import { Worker, bundleWorkflowCode } from '@temporalio/worker';
import { WORKFLOWS_PATH, bundleWorkflows } from '../../workers/lifecycle-worker';
import { loadCommittedHistories } from '../helpers/histories';

const silent = { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

describe('determinism guard', () => {
  it('bundles the workflow code with the worker bundler', async () => {
    const bundle = await bundleWorkflows();
    expect(bundle.code).toContain('planeProbe');
  });

  it('refuses workflow code that imports a Node built-in, naming it', async () => {
    const errors: string[] = [];
    await expect(
      bundleWorkflowCode({ workflowsPath: join(__dirname, 'fixtures', 'uses-node-fs.ts'), logger: { ...silent, error: (m: string) => errors.push(m) } }),
    ).rejects.toThrow(/Webpack finished with errors/);
    expect(errors.join('\n')).toMatch(/node:fs|'fs'/);
  });

  it('replays every committed history against today\'s workflow code without a determinism error', async () => {
    const histories = loadCommittedHistories();
    expect(histories.length).toBeGreaterThan(0);
    const failures: string[] = [];
    for await (const r of Worker.runReplayHistories({ workflowsPath: WORKFLOWS_PATH }, histories)) {
      if (r.error) failures.push(`${r.workflowId}: ${r.error.message}`);
    }
    expect(failures).toEqual([]);
  });

  it('detects a change that breaks replay (negative control)', async () => {
    const [probe] = loadCommittedHistories().filter((h) => h.workflowId.startsWith('plane-probe'));
    expect(probe).toBeDefined();
    await expect(
      Worker.runReplayHistory({ workflowsPath: join(__dirname, 'fixtures', 'changed-plane-probe.ts') }, probe!.history, probe!.workflowId),
    ).rejects.toBeInstanceOf(DeterminismViolationError);
  });
});
