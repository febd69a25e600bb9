import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { HistoryAndWorkflowId } from '@temporalio/client';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';

/** Folder of committed workflow histories (JSON as `temporal workflow show -o json` writes). */
export const HISTORIES_DIR = join(__dirname, '..', 'histories');

/** Every committed history, with the workflow id recorded in the file name. */
export function loadCommittedHistories(dir = HISTORIES_DIR): HistoryAndWorkflowId[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({ workflowId: f.replace(/\.json$/, ''), history: historyFromJSON(JSON.parse(readFileSync(join(dir, f), 'utf8'))) }));
}
