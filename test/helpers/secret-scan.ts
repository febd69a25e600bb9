import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';

export interface ScanResult {
  workflows: number;
  events: number;
  logFiles: number;
  logBytes: number;
  hits: string[];
}

/**
 * Every string and byte field of a value, as text. A walk rather than
 * JSON.stringify: protobuf messages serialise bytes (payloads) as base64,
 * which would hide a secret from a plain substring search.
 */
function asText(value: unknown, out: string[] = [], depth = 0): string {
  if (depth > 64 || value === null || value === undefined) return out.join('\n');
  if (typeof value === 'string') out.push(value);
  else if (ArrayBuffer.isView(value)) out.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8'));
  else if (Array.isArray(value)) for (const v of value) asText(v, out, depth + 1);
  else if (value instanceof Map) for (const [k, v] of value) asText([k, v], out, depth + 1);
  else if (typeof value === 'object') for (const v of Object.values(value as object)) asText(v, out, depth + 1);
  else out.push(String(value));
  return out.join('\n');
}

/**
 * Searches every workflow history (inputs, signals, results, failures,
 * search attribute upserts) on the test Temporal server and every log file
 * of the run for each secret.
 */
export async function scanForSecrets(opts: { temporalAddress: string; namespace: string; logDir: string; secrets: string[] }): Promise<ScanResult> {
  const result: ScanResult = { workflows: 0, events: 0, logFiles: 0, logBytes: 0, hits: [] };
  const connection = await Connection.connect({ address: opts.temporalAddress });
  try {
    const client = new Client({ connection, namespace: opts.namespace });
    for await (const wf of client.workflow.list()) {
      result.workflows++;
      const history = await client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
      result.events += history.events?.length ?? 0;
      const text = asText(history) + asText(wf.searchAttributes) + asText(wf.typedSearchAttributes);
      for (const s of opts.secrets) if (text.includes(s)) result.hits.push(`workflow ${wf.workflowId} (run ${wf.runId}) contains a secret`);
    }
  } finally {
    await connection.close();
  }
  const walk = (dir: string): string[] =>
    readdirSync(dir).flatMap((f) => {
      const p = join(dir, f);
      return statSync(p).isDirectory() ? walk(p) : [p];
    });
  for (const file of walk(opts.logDir)) {
    const text = readFileSync(file, 'utf8');
    result.logFiles++;
    result.logBytes += text.length;
    for (const s of opts.secrets) if (text.includes(s)) result.hits.push(`log ${file} contains a secret`);
  }
  return result;
}
