/**
 * The remote codec endpoint the Temporal Web UI and the `temporal` CLI call
 * to show decrypted payloads and to encrypt what an operator sends (POST
 * .../decode and .../encode with a Payloads message in protobuf JSON:
 * `{"payloads": [{"metadata": {...}, "data": "<base64>"}]}`, where an empty
 * list arrives as `{}`).
 *
 * It decrypts for whoever it lets in, so it asks for a token:
 * - `Authorization: Bearer <token>`: what `temporal --codec-auth` sends
 *   (verbatim; give it "Bearer <token>").
 * - a cookie set by the login form at GET /login: the Web UI cannot send a
 *   static header (it passes only its own OIDC access token, and only to an
 *   https endpoint), but it can include the browser's cookies for the codec
 *   origin ("Include cross-origin credentials" in its codec settings).
 * Bound to loopback, it also answers only requests whose Host is a loopback
 * name, so a web page cannot reach it through DNS rebinding.
 */
import { timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
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

/** The cookie the login form sets. */
export const CODEC_COOKIE = 'ironflow-codec';

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

export interface CodecServerOptions {
  codec: PayloadCodec;
  /** Every /encode and /decode must carry it (bearer header or login cookie); see codec-token.ts. */
  token: string;
  host?: string;
  port?: number;
  /** Web UI origins allowed to call it from a browser (CORS, with credentials). */
  allowOrigins: string[];
  /** Where the token lives, for the 401 message (a path, never the token). */
  tokenHint?: string;
}

function sameToken(given: string | undefined, token: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

const LOGIN_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ironflow codec server</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>Ironflow payload codec</h1>
<p>Paste the codec token (<code>cat .ironflow/codec-token</code>, or your <code>IRONFLOW_CODEC_TOKEN</code>) to let this browser decrypt payloads in the Temporal Web UI.</p>
<form method="post" action="login"><input name="token" type="password" size="48" autocomplete="off" autofocus> <button>Sign in</button></form>
</body></html>
`;

const SIGNED_IN_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ironflow codec server</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>Signed in</h1>
<p>This browser now sends the codec token as a cookie. In the Temporal Web UI, open the codec server settings, keep this endpoint,
and turn on <em>Include cross-origin credentials</em> (override the server's configuration if it asks).</p>
</body></html>
`;

export async function startCodecServer(opts: CodecServerOptions): Promise<{ url: string; app: FastifyInstance; stop(): Promise<void> }> {
  const app = Fastify({ logger: false, bodyLimit: 4 * 1024 * 1024 });
  const host = opts.host ?? '127.0.0.1';
  const loopbackOnly = LOOPBACK_HOSTS.has(host);
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => done(null, new URLSearchParams(body as string)));

  app.addHook('onRequest', async (req, reply) => {
    if (loopbackOnly) {
      const hostname = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();
      if (!LOOPBACK_HOSTS.has(hostname)) return reply.code(421).send({ message: `this codec server answers only on 127.0.0.1/localhost, not "${hostname.slice(0, 100)}"` });
    }
    const origin = req.headers.origin;
    if (origin && opts.allowOrigins.includes(origin)) {
      reply.header('access-control-allow-origin', origin);
      reply.header('vary', 'Origin');
      reply.header('access-control-allow-methods', 'POST, OPTIONS');
      reply.header('access-control-allow-headers', 'content-type, x-namespace, authorization');
      reply.header('access-control-allow-credentials', 'true');
    }
  });

  const authorized = (req: FastifyRequest) => {
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    return sameToken(bearer, opts.token) || sameToken(cookieValue(req.headers.cookie, CODEC_COOKIE), opts.token);
  };

  // Preflights carry no credentials (browsers never send them there).
  app.options('/*', async (_req, reply) => reply.code(204).send());

  app.get('/login', async (_req, reply) => reply.type('text/html; charset=utf-8').send(LOGIN_PAGE));
  app.post('/login', async (req, reply) => {
    const token = req.body instanceof URLSearchParams ? req.body.get('token') ?? undefined : (req.body as { token?: string } | undefined)?.token;
    if (!sameToken(token?.trim(), opts.token)) return reply.code(401).type('text/html; charset=utf-8').send('<p>Wrong token. <a href="login">Try again</a>.</p>');
    // HttpOnly: page scripts never see it. SameSite=Strict: sent to this origin from same-site pages only (the Web UI on 127.0.0.1).
    reply.header('set-cookie', `${CODEC_COOKIE}=${opts.token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=2592000`);
    return reply.type('text/html; charset=utf-8').send(SIGNED_IN_PAGE);
  });

  const handle = async (op: 'encode' | 'decode', req: FastifyRequest, reply: FastifyReply) => {
    if (!authorized(req)) {
      return reply.code(401).send({
        message: `the codec server needs "Authorization: Bearer <token>" (temporal CLI: --codec-auth "Bearer <token>") or the cookie from GET /login${opts.tokenHint ? `; the token is in ${opts.tokenHint}` : ''}`,
      });
    }
    // Protobuf JSON leaves out empty repeated fields: no payloads arrives as {} (the temporal CLI sends that for a query without arguments).
    const body = (req.body ?? {}) as { payloads?: unknown };
    if (typeof body !== 'object' || Array.isArray(body) || (body.payloads !== undefined && !Array.isArray(body.payloads))) {
      return reply.code(400).send({ message: 'body must be a Payloads message in protobuf JSON: {"payloads": [...]} ({} for none)' });
    }
    const payloads = ((body.payloads ?? []) as JsonPayload[]).map(fromJson);
    try {
      const out = payloads.length ? await opts.codec[op](payloads) : [];
      return { payloads: out.map(toJson) };
    } catch (err) {
      return reply.code(400).send({ message: `cannot ${op}: ${(err as Error).message}` });
    }
  };
  // Only the last part of the path counts (Temporal's codec protocol), so the endpoint may be mounted under a prefix.
  app.post('/*', async (req, reply) => {
    const op = /\/(encode|decode)$/.exec(req.url.split('?')[0] ?? '')?.[1] as 'encode' | 'decode' | undefined;
    if (!op) return reply.code(404).send({ message: 'POST .../encode or .../decode' });
    return handle(op, req, reply);
  });

  const address = await app.listen({ host, port: opts.port ?? 0 });
  return { url: address, app, stop: () => app.close() };
}
