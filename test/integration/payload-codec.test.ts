import { randomBytes, randomUUID } from 'node:crypto';
import { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import { createProbeActivities } from '../../activities';
import { AesGcmPayloadCodec } from '../../workers/codec/aes-gcm-codec';
import { startCodecServer } from '../../workers/codec/codec-server';
import { WORKFLOWS_PATH } from '../../workers/lifecycle-worker';
import { temporalTestContext, type TemporalTestContext } from '../helpers/env';
import { shareCodecKeyWithScan } from '../helpers/secret-scan';

const k1 = { id: 'k1', key: randomBytes(32) };
const k2 = { id: 'k2', key: randomBytes(32) };

beforeAll(() => {
  shareCodecKeyWithScan(k1);
  shareCodecKeyWithScan(k2);
});

describe('AES-GCM payload codec', () => {
  it('round-trips, rejects tampering, and decrypts old keys after rotation', async () => {
    const old = new AesGcmPayloadCodec([k1]);
    const payload = defaultPayloadConverter.toPayload({ secretish: 'hunter2' });
    const [sealed] = await old.encode([payload]);
    expect(Buffer.from(sealed!.data!).toString('latin1')).not.toContain('hunter2');
    const rotated = new AesGcmPayloadCodec([k2, k1]);
    const [opened] = await rotated.decode([sealed!]);
    expect(defaultPayloadConverter.fromPayload(opened!)).toEqual({ secretish: 'hunter2' });
    const data = Buffer.from(sealed!.data!);
    data[20] = data[20]! ^ 1;
    const tampered = { ...sealed!, data };
    await expect(rotated.decode([tampered])).rejects.toThrow();
    await expect(new AesGcmPayloadCodec([k2]).decode([sealed!])).rejects.toThrow(/key id "k1"/);
  });

  describe('with the real Temporal server', () => {
    let ctx: TemporalTestContext;
    beforeAll(async () => {
      ctx = await temporalTestContext('codec');
    });
    afterAll(async () => ctx?.close());

    it('stores only ciphertext in history; the codec server decrypts it for the UI', async () => {
      const codec = new AesGcmPayloadCodec([k1]);
      const client = new Client({ connection: ctx.client.connection, namespace: ctx.namespace, dataConverter: { payloadCodecs: [codec] } });
      const worker = await Worker.create({
        connection: ctx.nativeConnection,
        namespace: ctx.namespace,
        taskQueue: ctx.taskQueue,
        workflowsPath: WORKFLOWS_PATH,
        activities: createProbeActivities(),
        dataConverter: { payloadCodecs: [codec] },
      });
      const nonce = `marker-${randomUUID()}`;
      const workflowId = `codec-${randomUUID()}`;
      const result = await worker.runUntil(client.workflow.execute('planeProbe', { taskQueue: ctx.taskQueue, workflowId, args: [{ nonce }] }));
      expect(result).toMatchObject({ nonce });

      // Read the history WITHOUT the codec, as the UI or anyone with server access would.
      const raw = await ctx.client.workflow.getHandle(workflowId).fetchHistory();
      const rawText = JSON.stringify(raw, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : v));
      expect(rawText).not.toContain(nonce);

      const server = await startCodecServer({ codec, token: 'codec-token-0123456789', allowOrigins: ['http://127.0.0.1:8233'] });
      try {
        const started = raw.events![0]!.workflowExecutionStartedEventAttributes!.input!.payloads![0]!;
        const res = await fetch(`${server.url}/decode`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', origin: 'http://127.0.0.1:8233', authorization: 'Bearer codec-token-0123456789' },
          body: JSON.stringify({
            payloads: [{ metadata: Object.fromEntries(Object.entries(started.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')])), data: Buffer.from(started.data!).toString('base64') }],
          }),
        });
        expect(res.status).toBe(200);
        expect(res.headers.get('access-control-allow-origin')).toBe('http://127.0.0.1:8233');
        const body = (await res.json()) as { payloads: Array<{ data: string }> };
        expect(Buffer.from(body.payloads[0]!.data, 'base64').toString()).toContain(nonce);
      } finally {
        await server.stop();
      }
    });
  });
});
