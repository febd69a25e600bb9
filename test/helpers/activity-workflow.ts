import { mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ActivityOptions } from '@temporalio/workflow';

/** The options `runActivityWith` takes (JSON: durations as strings such as '2s'). */
export type RunActivityOptions = Pick<ActivityOptions, 'startToCloseTimeout' | 'heartbeatTimeout' | 'retry'>;

/**
 * A workflows file with one workflow, `runActivityWith(name, input,
 * options)`, that runs one named activity with the given timeouts and retry
 * policy: the smallest real Temporal path for an activity's heartbeats,
 * retries and failure as the history records them. Written to a directory
 * of its own (beside a node_modules link for the bundler), so test files
 * running at the same time never share it.
 */
export function activityWorkflowsPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ironflow-activity-workflow-'));
  symlinkSync(resolve(__dirname, '../../node_modules'), join(dir, 'node_modules'), 'dir');
  const file = join(dir, 'run-activity-with.js');
  writeFileSync(
    file,
    `const { proxyActivities } = require('@temporalio/workflow');
exports.runActivityWith = async function runActivityWith(name, input, options) {
  const acts = proxyActivities({ startToCloseTimeout: '60s', ...options });
  return acts[name](input);
};
`,
  );
  return file;
}
