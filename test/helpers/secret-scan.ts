import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { inspect } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import { AesGcmPayloadCodec, ENCODING, type CodecKey } from '../../workers/codec/aes-gcm-codec';
import { sharedEnv } from './env';

/** A secret the tests handed to Ironflow: text, or bytes that need not be UTF-8. */
export type TestSecret = string | Buffer;

export interface ScanResult {
  workflows: number;
  events: number;
  /** Encrypted payloads opened with the codec keys found, and those no key opened (a blind spot, reported). */
  decryptedPayloads: number;
  undecryptablePayloads: number;
  logFiles: number;
  logBytes: number;
  hits: string[];
}

/** A byte sequence whose presence means the secret leaked, and how it was spelled (for the report, never the value). */
interface Pattern {
  kind: string;
  bytes: Buffer;
}

/** Shorter fragments would match by chance. */
const MIN_FRAGMENT_BYTES = 8;
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Every spelling under which a secret can end up in a history or a log:
 * its raw bytes; JSON-escaped (pino lines, json/plain payloads: a NUL is
 * `\u0000` there); as `util.inspect` quotes it (Node's own errors);
 * percent-encoded (URLs); each run between control characters or invalid
 * UTF-8 (what a C tool keeps before a NUL, a line of output, a lossy
 * decode); and base64 at each of the three byte alignments (an HTTP Basic
 * header, a protobuf bytes field printed as JSON), so a secret in the
 * middle of a longer base64 string is found too.
 *
 * Example: `ab\0cdefghij-klmnop` → raw, `ab\u0000cdefghij-klmnop`,
 * `ab\x00cdefghij-klmnop`, `ab%00cdefghij-klmnop`, `cdefghij-klmnop`, and
 * three base64 cores.
 */
export function secretPatterns(secret: TestSecret): Pattern[] {
  const bytes = Buffer.isBuffer(secret) ? secret : Buffer.from(secret, 'utf8');
  const out: Pattern[] = [{ kind: 'raw', bytes }];
  let text: string | undefined;
  try {
    text = STRICT_UTF8.decode(bytes);
  } catch {
    text = undefined;
  }
  if (text !== undefined) {
    out.push({ kind: 'JSON-escaped', bytes: Buffer.from(JSON.stringify(text).slice(1, -1)) });
    out.push({ kind: 'util.inspect', bytes: Buffer.from(inspect(text).slice(1, -1)) });
    out.push({ kind: 'percent-encoded', bytes: Buffer.from(encodeURIComponent(text)) });
  }
  for (const piece of bytes.toString('utf8').split(/[\x00-\x1f\x7f\ufffd]+/)) {
    const b = Buffer.from(piece, 'utf8');
    if (b.length >= MIN_FRAGMENT_BYTES && !b.equals(bytes)) out.push({ kind: 'fragment between control characters', bytes: b });
  }
  for (let k = 0; k < 3; k++) {
    // Drop k leading bytes so the rest starts a base64 group; keep whole groups only.
    const aligned = bytes.subarray(k, k + Math.floor((bytes.length - k) / 3) * 3);
    if (aligned.length >= 6) out.push({ kind: `base64 (offset ${k})`, bytes: Buffer.from(aligned.toString('base64')) });
  }
  const seen = new Set<string>();
  return out.filter((p) => p.bytes.length > 0 && !seen.has(p.bytes.toString('hex')) && seen.add(p.bytes.toString('hex')));
}

function walkFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    const s = statSync(p, { throwIfNoEntry: false });
    if (!s) return [];
    return s.isDirectory() ? walkFiles(p) : [p];
  });
}

/** The payload codec keys of every plane the tests ran under `dir` (each keeps `codec-key.json`). */
export function findCodecKeys(dir: string): CodecKey[] {
  const keys: CodecKey[] = [];
  for (const file of walkFiles(dir).filter((f) => f.endsWith('codec-key.json'))) {
    const { id, key } = JSON.parse(readFileSync(file, 'utf8')) as { id: string; key: string };
    keys.push({ id, key: Buffer.from(key, 'base64') });
  }
  return keys;
}

/**
 * Lets the end-of-run scan open payloads a test encrypted with a key of its
 * own: writes it where {@link findCodecKeys} looks (the run's state directory).
 */
export function shareCodecKeyWithScan(key: CodecKey): void {
  const dir = join(sharedEnv().stateDir, 'codec-keys', key.id);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'codec-key.json'), JSON.stringify({ id: key.id, key: key.key.toString('base64') }), { mode: 0o600 });
}

const isPayload = (v: unknown): v is Payload =>
  !!v && typeof v === 'object' && ArrayBuffer.isView((v as Payload).data) && typeof (v as Payload).metadata === 'object' && (v as Payload).metadata !== null;

/**
 * Every string and byte field of a value, as bytes. A walk rather than
 * JSON.stringify: protobuf messages serialise bytes (payloads) as base64,
 * which would hide a secret from a plain substring search. Encrypted
 * payloads are opened with `codec` when one of its keys fits.
 */
async function fieldsOf(value: unknown, codec: AesGcmPayloadCodec | undefined, counts: { decrypted: number; undecryptable: number }, out: Buffer[] = [], depth = 0): Promise<Buffer[]> {
  if (depth > 64 || value === null || value === undefined) return out;
  if (typeof value === 'string') out.push(Buffer.from(value, 'utf8'));
  else if (ArrayBuffer.isView(value)) out.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
  else if (Array.isArray(value)) for (const v of value) await fieldsOf(v, codec, counts, out, depth + 1);
  else if (value instanceof Map) for (const [k, v] of value) await fieldsOf([k, v], codec, counts, out, depth + 1);
  else if (typeof value === 'object') {
    if (isPayload(value) && Buffer.from(value.metadata?.encoding ?? []).toString() === ENCODING) {
      try {
        if (!codec) throw new Error('no codec keys');
        const [opened] = await codec.decode([value]);
        counts.decrypted++;
        await fieldsOf(opened, codec, counts, out, depth + 1);
      } catch {
        counts.undecryptable++;
      }
    }
    for (const v of Object.values(value as object)) await fieldsOf(v, codec, counts, out, depth + 1);
  } else out.push(Buffer.from(String(value)));
  return out;
}

/** The first pattern of `secret` found in any of `fields`, or undefined. */
function findIn(fields: Buffer[], patterns: Pattern[]): Pattern | undefined {
  return patterns.find((p) => fields.some((f) => f.includes(p.bytes)));
}

/**
 * Which of `secrets` (by index) appear in `value` (a history, a status, an
 * error), in any spelling, with encrypted payloads opened by `codec`.
 * Example: `secretsIn(await handle.fetchHistory(), [pw])` → `[]` when clean.
 */
export async function secretsIn(value: unknown, secrets: TestSecret[], codec?: AesGcmPayloadCodec): Promise<string[]> {
  const fields = await fieldsOf(value, codec, { decrypted: 0, undecryptable: 0 });
  return secrets.flatMap((s, i) => {
    const hit = findIn(fields, secretPatterns(s));
    return hit ? [`secret #${i} (${hit.kind})`] : [];
  });
}

/**
 * Searches every workflow history (inputs, signals, results, failures,
 * search attribute upserts; encrypted payloads opened with the codec keys
 * found under `codecKeyDir`, by default the directory above `logDir`, i.e.
 * the run's state directory where every plane a test started keeps its
 * key) on the test Temporal server and every log file
 * of the run for each secret, in every spelling of {@link secretPatterns}.
 * A hit names where and which spelling, never the secret.
 */
export async function scanForSecrets(opts: { temporalAddress: string; namespace: string; logDir: string; secrets: TestSecret[]; codecKeyDir?: string }): Promise<ScanResult> {
  const result: ScanResult = { workflows: 0, events: 0, decryptedPayloads: 0, undecryptablePayloads: 0, logFiles: 0, logBytes: 0, hits: [] };
  const patterns = opts.secrets.map((s, i) => ({ index: i, patterns: secretPatterns(s) }));
  const keys = findCodecKeys(opts.codecKeyDir ?? dirname(opts.logDir));
  const codec = keys.length > 0 ? new AesGcmPayloadCodec(keys) : undefined;
  const counts = { decrypted: 0, undecryptable: 0 };
  const connection = await Connection.connect({ address: opts.temporalAddress });
  try {
    const client = new Client({ connection, namespace: opts.namespace });
    for await (const wf of client.workflow.list()) {
      result.workflows++;
      const history = await client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
      result.events += history.events?.length ?? 0;
      const fields = await fieldsOf([history, wf.searchAttributes, wf.typedSearchAttributes], codec, counts);
      for (const { index, patterns: p } of patterns) {
        const hit = findIn(fields, p);
        if (hit) result.hits.push(`workflow ${wf.workflowId} (run ${wf.runId}) contains secret #${index} (${hit.kind})`);
      }
    }
  } finally {
    await connection.close();
  }
  result.decryptedPayloads = counts.decrypted;
  result.undecryptablePayloads = counts.undecryptable;
  for (const file of walkFiles(opts.logDir)) {
    const bytes = readFileSync(file);
    result.logFiles++;
    result.logBytes += bytes.length;
    for (const { index, patterns: p } of patterns) {
      const hit = findIn([bytes], p);
      if (hit) result.hits.push(`log ${file} contains secret #${index} (${hit.kind})`);
    }
  }
  return result;
}
