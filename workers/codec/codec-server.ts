/**
 * The remote codec endpoint the Temporal Web UI and CLI call to show
 * decrypted payloads (POST /decode, /encode with {payloads: [...]}, fields
 * base64 as in Temporal's JSON). Bind it where only operators reach it: it
 * decrypts for whoever asks.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { Payload, PayloadCodec } from '@temporalio/common';

interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}
const fromJson = (p: JsonPayload): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  data: Buffer.from(p.data ?? '', 'base64'),
});
const toJson = (p: Payload): JsonPayload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  data: Buffer.from(p.data ?? []).toString('base64'),
});

export async function startCodecServer(opts: { codec: PayloadCodec; host?: string; port?: number; allowOrigins: string[] }): Promise<{ url: string; app: FastifyInstance; stop(): Promise<void> }> {
  const app = Fastify({ logger: false });
  app.addHook('onRequest', async (req, reply) => {
    const origin = req.headers.origin;
    if (origin && opts.allowOrigins.includes(origin)) {
      reply.header('access-control-allow-origin', origin);
      reply.header('access-control-allow-methods', 'POST, OPTIONS');
      reply.header('access-control-allow-headers', 'content-type, x-namespace, authorization');
      reply.header('access-control-allow-credentials', 'true');
    }
  });
  app.options('/*', async (_req, reply) => reply.code(204).send());
  for (const op of ['encode', 'decode'] as const) {
    app.post(`/${op}`, async (req, reply) => {
      const body = req.body as { payloads?: JsonPayload[] } | undefined;
      if (!body || !Array.isArray(body.payloads)) return reply.code(400).send({ message: 'body must be {"payloads": [...]}' });
      const out = await opts.codec[op](body.payloads.map(fromJson));
      return { payloads: out.map(toJson) };
    });
  }
  const address = await app.listen({ host: opts.host ?? '127.0.0.1', port: opts.port ?? 0 });
  return { url: address, app, stop: () => app.close() };
}
