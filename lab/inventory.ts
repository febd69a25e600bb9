/**
 * Loads and validates a lab inventory (YAML, api/lab.ts shape). Errors name
 * the server and field to fix, e.g. `servers[3].nics[0].mac must match ...`.
 */
import { readFileSync } from 'node:fs';
import Ajv, { type JSONSchemaType } from 'ajv';
import { parse } from 'yaml';
import type { LabInventory } from '../api/lab';

const FAULTS = ['bmc-401', 'bmc-409', 'bmc-503', 'bmc-timeout', 'bmc-session-lost', 'power-stuck', 'disk-fail-write', 'disk-fail-erase', 'node-never-ready', 'node-notready-later', 'pxe-tftp-loss', 'pxe-http-loss'] as const;

const schema: JSONSchemaType<LabInventory> = {
  type: 'object',
  required: ['namespace', 'servers'],
  additionalProperties: false,
  properties: {
    namespace: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' },
    servers: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['name', 'vendor', 'model', 'cpus', 'memoryMiB', 'disks', 'nics', 'bmc'],
        additionalProperties: false,
        properties: {
          name: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63 },
          vendor: { type: 'string' },
          model: { type: 'string' },
          cpus: { type: 'integer', minimum: 1, maximum: 1024 },
          memoryMiB: { type: 'integer', minimum: 64 },
          kind: { type: 'string', enum: ['sim', 'qemu'], nullable: true },
          firmware: {
            type: 'object',
            nullable: true,
            required: [],
            additionalProperties: false,
            properties: { bootRetrySeconds: { type: 'number', minimum: 0, maximum: 3600, nullable: true } },
          },
          disks: {
            type: 'array',
            minItems: 1,
            items: {
              type: 'object',
              required: ['name', 'sizeGiB', 'serialNumber'],
              additionalProperties: false,
              properties: {
                name: { type: 'string', pattern: '^[a-z][a-z0-9]*$' },
                sizeGiB: { type: 'number', exclusiveMinimum: 0 },
                serialNumber: { type: 'string', minLength: 1 },
                model: { type: 'string', nullable: true },
                rotational: { type: 'boolean', nullable: true },
              },
            },
          },
          nics: {
            type: 'array',
            minItems: 1,
            items: {
              type: 'object',
              required: ['name', 'mac'],
              additionalProperties: false,
              properties: { name: { type: 'string' }, mac: { type: 'string', pattern: '^([0-9a-f]{2}:){5}[0-9a-f]{2}$' } },
            },
          },
          bmc: {
            type: 'object',
            required: ['protocol', 'username', 'password'],
            additionalProperties: false,
            properties: { protocol: { type: 'string', enum: ['redfish', 'ipmi'] }, username: { type: 'string', minLength: 1 }, password: { type: 'string', minLength: 1 } },
          },
          faults: {
            type: 'array',
            nullable: true,
            items: {
              type: 'object',
              required: ['fault'],
              additionalProperties: false,
              properties: {
                fault: { type: 'string', enum: [...FAULTS] },
                count: { type: 'integer', minimum: 1, nullable: true },
                afterSeconds: { type: 'number', minimum: 0, nullable: true },
              },
            },
          },
        },
      },
    },
  },
};

const validate = new Ajv({ allErrors: true }).compile(schema);

/** Parses and validates; throws one message listing every problem with its path. */
export function parseInventory(text: string, source = 'inventory'): LabInventory {
  const doc: unknown = parse(text);
  if (!validate(doc)) {
    const problems = (validate.errors ?? []).map((e) => `${e.instancePath.replace(/^\//, '').replace(/\//g, '.') || '(root)'} ${e.message}`);
    throw new Error(`${source} is not a valid lab inventory:\n  ${problems.join('\n  ')}`);
  }
  const names = new Set<string>();
  const macs = new Set<string>();
  for (const s of doc.servers) {
    if (names.has(s.name)) throw new Error(`${source}: server name ${s.name} appears twice`);
    names.add(s.name);
    for (const n of s.nics) {
      if (macs.has(n.mac)) throw new Error(`${source}: MAC ${n.mac} of ${s.name} is used by another server`);
      macs.add(n.mac);
    }
  }
  return doc;
}

export function loadInventory(file: string): LabInventory {
  return parseInventory(readFileSync(file, 'utf8'), file);
}

/** N servers of one shape (benchmarks, scale tests): MACs 52:54:00:ff:XX:XX, serials by index. */
export function generatedInventory(n: number, opts: { namespace?: string; protocol?: 'redfish' | 'ipmi' } = {}): LabInventory {
  return {
    namespace: opts.namespace ?? 'lab',
    servers: Array.from({ length: n }, (_, i) => ({
      name: `gen-${String(i).padStart(4, '0')}`,
      vendor: 'Ironflow Lab',
      model: 'sim-1u',
      cpus: 4,
      memoryMiB: 4096,
      disks: [{ name: 'vda', sizeGiB: 0.0625, serialNumber: `GEN-${i}-A`, rotational: false }],
      nics: [{ name: 'eth0', mac: `52:54:00:ff:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}` }],
      bmc: { protocol: opts.protocol ?? 'redfish', username: 'admin', password: `lab-pass-${i}` },
    })),
  };
}
