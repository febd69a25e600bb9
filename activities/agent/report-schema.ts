/**
 * JSON Schema of AgentReport (api/agent.ts), checked with ajv before a report
 * reaches a workflow. The schema is chosen by `status` (and `type` for ok
 * reports) so an error names the one field that is wrong instead of every
 * branch of a oneOf.
 */
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import type { AgentReport } from '../../api/agent';

/** Every field bounded: a report is at most a few hundred KiB of JSON (the route's body limit), and every string short. */
const str = { type: 'string', minLength: 1, maxLength: 256 } as const;
const text = { type: 'string', maxLength: 256 } as const;
const nat = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const;
const sha256 = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;
const iso = { type: 'string', maxLength: 40, pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?Z$' } as const;
const COMMAND_TYPES = ['none', 'inspect', 'deploy', 'erase', 'poweroff'];

const head = {
  commandId: { type: 'string', minLength: 1, maxLength: 128 },
  type: { enum: COMMAND_TYPES },
  status: { enum: ['ok', 'progress', 'failed'] },
} as const;

const obj = (properties: Record<string, unknown>, required: string[]) => ({
  type: 'object',
  properties,
  required,
  additionalProperties: false,
});

const inspection = obj(
  {
    cpu: obj({ arch: text, model: text, count: { type: 'integer', minimum: 0, maximum: 65536 }, mhz: { type: 'number', minimum: 0, maximum: 1e6 } }, ['arch', 'model', 'count']),
    memoryMiB: nat,
    disks: {
      type: 'array',
      maxItems: 256,
      items: obj(
        {
          name: str, sizeBytes: nat, serialNumber: text, model: text, vendor: text,
          rotational: { type: 'boolean' }, wwn: text, hctl: text,
        },
        ['name', 'sizeBytes', 'serialNumber', 'model', 'rotational'],
      ),
    },
    nics: {
      type: 'array',
      maxItems: 128,
      items: obj({ name: str, mac: { type: 'string', pattern: '^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$' }, ip: { type: 'string', maxLength: 64 }, speedMbps: nat }, ['name', 'mac']),
    },
    system: obj({ manufacturer: text, productName: text, serialNumber: text }, []),
    bootMode: { enum: ['UEFI', 'legacy'] },
  },
  ['cpu', 'memoryMiB', 'disks', 'nics', 'system'],
);

const deploy = obj(
  {
    rootDevice: str,
    rootDeviceSerial: text,
    rootDeviceSizeBytes: nat,
    sampleSha256: sha256,
    bytesWritten: nat,
    checksumType: { enum: ['sha256', 'sha512'] },
    checksum: { type: 'string', pattern: '^[0-9a-f]{64}([0-9a-f]{64})?$' },
    userDataWritten: { type: 'boolean' },
  },
  ['rootDevice', 'bytesWritten', 'checksumType', 'checksum', 'userDataWritten'],
);

const erase = obj(
  {
    mode: { enum: ['metadata', 'full', 'secure'] },
    disks: {
      type: 'array',
      maxItems: 256,
      items: obj(
        {
          disk: str, serialNumber: text, method: { enum: ['metadata', 'overwrite', 'secure-erase', 'discard'] },
          result: { enum: ['ok', 'failed'] }, verified: { type: 'boolean' }, sizeBytes: nat, sampleSha256: sha256,
          detail: { type: 'string', maxLength: 1024 }, finishedAt: iso,
        },
        ['disk', 'serialNumber', 'method', 'result', 'verified', 'finishedAt'],
      ),
    },
  },
  ['mode', 'disks'],
);

const ajv = new Ajv({ allErrors: false, strict: true });
const compile = (s: object) => ajv.compile(s);
const validators = {
  head: compile({ type: 'object', properties: head, required: ['commandId', 'type', 'status'] }),
  progress: compile(obj({ ...head, message: { type: 'string', maxLength: 512 }, percent: { type: 'number', minimum: 0, maximum: 100 } }, ['commandId', 'type', 'status', 'message'])),
  failed: compile(obj({ ...head, message: { type: 'string', maxLength: 4096 }, failedDisk: str }, ['commandId', 'type', 'status', 'message'])),
  inspect: compile(obj({ ...head, data: inspection }, ['commandId', 'type', 'status', 'data'])),
  deploy: compile(obj({ ...head, data: deploy }, ['commandId', 'type', 'status', 'data'])),
  erase: compile(obj({ ...head, data: erase }, ['commandId', 'type', 'status', 'data'])),
} satisfies Record<string, ValidateFunction>;

/**
 * The sentence for the first error. It names schema fields only: an
 * instancePath is made of schema property names and array indexes (a path
 * into a property the schema does not know fails as additionalProperties
 * first), and the name of an unknown property is NOT repeated (nothing a
 * client sends is echoed).
 */
function describe(errors: ErrorObject[] | null | undefined): string {
  const e = errors?.[0];
  if (!e) return 'invalid report';
  if (e.keyword === 'additionalProperties') return `report field ${e.instancePath || '/'}: has a property the protocol does not define (api/agent.ts)`;
  const field = e.keyword === 'required' ? `${e.instancePath}/${(e.params as { missingProperty: string }).missingProperty}` : e.instancePath || '/';
  return `report field ${field}: ${e.message ?? 'is invalid'}`;
}

/** Returns the report, typed, or the sentence naming the wrong field. */
export function parseAgentReport(body: unknown): { ok: true; report: AgentReport } | { ok: false; error: string } {
  if (!validators.head(body)) return { ok: false, error: describe(validators.head.errors) };
  const b = body as { type: string; status: string };
  let v: ValidateFunction;
  if (b.status === 'progress') v = validators.progress;
  else if (b.status === 'failed') v = validators.failed;
  else if (b.type === 'inspect' || b.type === 'deploy' || b.type === 'erase') v = validators[b.type];
  else return { ok: false, error: `report field /status: "ok" reports exist only for inspect, deploy and erase, not ${b.type}` };
  return v(body) ? { ok: true, report: body as AgentReport } : { ok: false, error: describe(v.errors) };
}
