import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { createProbeActivities } from '../../activities';
import { AesGcmPayloadCodec } from '../../workers/codec/aes-gcm-codec';
import { WORKFLOWS_PATH } from '../../workers/lifecycle-worker';
import { sharedEnv, temporalTestContext } from '../helpers/env';
import { scanForSecrets, secretPatterns } from '../helpers/secret-scan';

// Negative controls for the end-of-run secret scan: values that ARE in a
// history or a log must be found, in whatever spelling they were written
// (none is registered as a test secret, so the global scan does not fail on them).

const unique = () => randomBytes(6).toString('hex');

describe('the secret scan', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'scan-'));
    mkdirSync(join(dir, 'logs'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const scanLogs = (secrets: Array<string | Buffer>) => {
    const env = sharedEnv();
    // An empty key dir and a namespace with no workflows would make this quicker, but the
    // shared one is what the global scan reads: these secrets are fresh, so only the planted files can hold them.
    return scanForSecrets({ temporalAddress: env.temporalAddress, namespace: env.temporalNamespace, logDir: join(dir, 'logs'), codecKeyDir: dir, secrets });
  };

  it('finds a secret placed in a workflow input and in a log file', async () => {
    const ctx = await temporalTestContext('scan');
    const planted = `planted-${unique()}`;
    try {
      const worker = await Worker.create({ connection: ctx.nativeConnection, namespace: ctx.namespace, taskQueue: ctx.taskQueue, workflowsPath: WORKFLOWS_PATH, activities: createProbeActivities() });
      const workflowId = `scan-${randomUUID()}`;
      await worker.runUntil(ctx.client.workflow.execute('planeProbe', { taskQueue: ctx.taskQueue, workflowId, args: [{ nonce: planted }] }));
      writeFileSync(join(dir, 'logs', 'a.log'), `{"msg":"oops","value":"${planted}"}\n`);
      const result = await scanLogs([planted]);
      expect(result.hits).toEqual(expect.arrayContaining([expect.stringContaining(workflowId), expect.stringContaining('a.log')]));
      expect(result.hits.join('\n')).not.toContain(planted);
    } finally {
      await ctx.close();
    }
  });

  it('finds a NUL-byte password however it was written: JSON-escaped by a logger, cut at the NUL by a C tool, in a Basic header, percent-encoded', async () => {
    const password = `nul-${unique()}\0after-nul-${unique()}`;
    const [, tail] = password.split('\0');
    const files: Record<string, string> = {
      'pino.log': `${JSON.stringify({ level: 40, msg: 'failed', err: `bad password ${password}` })}\n`,
      'ipmitool.log': `Error: ${tail} rejected\n`,
      'http.log': `Authorization: Basic ${Buffer.from(`admin:${password}`).toString('base64')}\n`,
      'url.log': `GET /login?pw=${encodeURIComponent(password)}\n`,
      'clean.log': 'BMC 127.0.0.1:623 rejected credentials from Secret ns/bmc (IPMI RAKP authentication failed)\n',
    };
    for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, 'logs', f), text);
    const result = await scanLogs([password]);
    const byFile = Object.fromEntries(result.hits.filter((h) => h.startsWith('log ')).map((h) => [h.split('/').pop()!.split(' ')[0]!, h.replace(/^.*contains secret #\d+ \((.*)\)$/, '$1')]));
    expect(byFile).toEqual({
      'pino.log': 'JSON-escaped',
      'ipmitool.log': 'fragment between control characters',
      'http.log': expect.stringMatching(/^base64 \(offset \d\)$/),
      'url.log': 'percent-encoded',
    });
  });

  it('finds a password whose bytes are not UTF-8, as raw bytes', async () => {
    const password = Buffer.concat([Buffer.from(`raw-${unique()}`), Buffer.from([0xff, 0xfe, 0x80]), Buffer.from('-tail')]);
    writeFileSync(join(dir, 'logs', 'bytes.log'), Buffer.concat([Buffer.from('value: '), password, Buffer.from('\n')]));
    const result = await scanLogs([password]);
    expect(result.hits).toEqual([expect.stringMatching(/bytes\.log contains secret #0 \(raw\)$/)]);
  });

  it('opens encrypted payloads with the codec keys it finds: a secret inside ciphertext is a hit with the key, and a reported blind spot without', async () => {
    const ctx = await temporalTestContext('scan-codec');
    const planted = `sealed-${unique()}`;
    const key = { id: `scan-${unique()}`, key: randomBytes(32) };
    const codec = new AesGcmPayloadCodec([key]);
    try {
      const client = new Client({ connection: ctx.client.connection, namespace: ctx.namespace, dataConverter: { payloadCodecs: [codec] } });
      const worker = await Worker.create({ connection: ctx.nativeConnection, namespace: ctx.namespace, taskQueue: ctx.taskQueue, workflowsPath: WORKFLOWS_PATH, activities: createProbeActivities(), dataConverter: { payloadCodecs: [codec] } });
      const workflowId = `scan-codec-${randomUUID()}`;
      await worker.runUntil(client.workflow.execute('planeProbe', { taskQueue: ctx.taskQueue, workflowId, args: [{ nonce: planted }] }));

      const blind = await scanLogs([planted]);
      expect(blind.hits.filter((h) => h.includes(workflowId))).toEqual([]);
      expect(blind.undecryptablePayloads).toBeGreaterThan(0);

      mkdirSync(join(dir, 'plane'));
      writeFileSync(join(dir, 'plane', 'codec-key.json'), JSON.stringify({ id: key.id, key: key.key.toString('base64') }));
      const seeing = await scanLogs([planted]);
      expect(seeing.hits).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`workflow ${workflowId} .*contains secret #0`))]));
      expect(seeing.decryptedPayloads).toBeGreaterThan(0);
    } finally {
      await ctx.close();
    }
  });

  it('spells a NUL-byte secret in every form it searches for', () => {
    expect(secretPatterns('abcd\0efghijkl-mnop').map((p) => [p.kind, p.bytes.toString('latin1')])).toEqual([
      ['raw', 'abcd\0efghijkl-mnop'],
      ['JSON-escaped', 'abcd\\u0000efghijkl-mnop'],
      ['util.inspect', 'abcd\\x00efghijkl-mnop'],
      ['percent-encoded', 'abcd%00efghijkl-mnop'],
      ['fragment between control characters', 'efghijkl-mnop'],
      // 18 bytes: whole groups from byte 0 (18), 1 (15) and 2 (15).
      ['base64 (offset 0)', Buffer.from('abcd\0efghijkl-mnop').toString('base64')],
      ['base64 (offset 1)', Buffer.from('bcd\0efghijkl-mn').toString('base64')],
      ['base64 (offset 2)', Buffer.from('cd\0efghijkl-mno').toString('base64')],
    ]);
  });
});
