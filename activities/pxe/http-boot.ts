/**
 * Ironflow's provisioning HTTP server (layout in api/pxe.ts):
 *
 *   GET /boot.ipxe          the chain script DHCP hands to iPXE
 *   GET /boot/<mac>.ipxe    per-MAC script; 404 + a discovery record for unknown MACs.
 *                           An agent boot's script carries its token and is served
 *                           ONCE: a second fetch ends that boot (403, exit script)
 *   GET /files/<name>       boot files from a read-only root, with Range support
 *
 * The agent API (api/agent.ts) is another module's fastify plugin served
 * under /v1/agent on this same instance: pass it in `plugins` (fastify takes
 * plugins only before it listens), or build the app with buildHttpBootApp,
 * register, then listen yourself.
 *
 * One JSON log line per request (pino), with the MAC and host it concerned;
 * agent API requests are logged by their route, never their raw URL (which
 * a client chose). Response bodies never repeat what the client sent.
 */
import Fastify, { LogController, type FastifyInstance, type FastifyPluginAsync, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { AGENT_API_PREFIX } from '../../api/agent';
import type { HostRef } from '../../api/host';
import { normalizeMac } from '../../api/pxe';
import type { SessionStore } from '../agent/session-store';
import { FileRefused, openConfined, resolveRoot } from './confined-file';
import { renderChainScript, renderHostScript } from './ipxe-script';

export interface HttpBootOptions {
  host: string;
  port: number;
  /** Root of /files/ (kernel, initramfs, images); only read, never written. */
  filesDir: string;
  sessions: SessionStore;
  /** A second fetch of an agent boot's script ended that boot (Warning Event, deliver the invalidated report). */
  onBootInvalidated?: (host: HostRef, reason: string) => void;
  log: Logger;
  /** URL machines use to reach this server (e.g. http://10.99.0.1:8080); default: the listening address. */
  publicUrl?: string;
  /** Plugins registered before listening, e.g. the agent API with its prefix. */
  plugins?: { plugin: FastifyPluginAsync; prefix?: string }[];
}

export interface HttpBootServer {
  url: string;
  port: number;
  app: FastifyInstance;
  stop(): Promise<void>;
}

interface LogContext {
  mac?: string;
  host?: string;
  file?: string;
  refused?: string;
  discovery?: string;
}

/** A single byte range, or why none is served. Example: size 100, "bytes=-10" -> 90..99. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  // Multi-range and malformed headers: RFC 9110 lets a server ignore Range and send the whole file.
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) return 'unsatisfiable';
  return { start, end };
}

/** Builds the app with the PXE routes; nothing listens yet. */
export async function buildHttpBootApp(opts: Omit<HttpBootOptions, 'host' | 'port'> & { baseUrl: (req: FastifyRequest) => string }): Promise<FastifyInstance> {
  const realRoot = await resolveRoot(opts.filesDir);
  const { sessions, log } = opts;
  const app = Fastify({
    loggerInstance: log,
    // Fastify's own two lines per request are replaced by one line with the MAC and host (onResponse below).
    logController: new LogController({ disableRequestLogging: true }),
  }) as unknown as FastifyInstance;
  const ctx = new WeakMap<FastifyRequest, LogContext>();
  const note = (req: FastifyRequest, c: LogContext) => ctx.set(req, { ...ctx.get(req), ...c });
  const started = new WeakMap<FastifyRequest, bigint>();
  // Which machine last fetched its script from an address, so the kernel and initramfs downloads that follow
  // (which carry no MAC) are logged with that MAC and host too. Bounded: oldest address forgotten first.
  const byClientIp = new Map<string, LogContext>();
  const rememberClient = (ip: string, c: LogContext) => {
    byClientIp.delete(ip);
    byClientIp.set(ip, c);
    if (byClientIp.size > 4096) byClientIp.delete(byClientIp.keys().next().value!);
  };

  app.addHook('onRequest', async (req) => {
    started.set(req, process.hrtime.bigint());
  });
  app.addHook('onResponse', async (req, reply) => {
    const t0 = started.get(req);
    const ms = t0 === undefined ? undefined : Number(process.hrtime.bigint() - t0) / 1e6;
    const route = req.routeOptions.url;
    // Agent API paths carry names a client chose: log the route. PXE paths: the URL, bounded.
    const where = route?.startsWith(AGENT_API_PREFIX) ? { route } : { route, url: req.url.slice(0, 256) };
    log.info(
      { reqId: req.id, method: req.method, ...where, status: reply.statusCode, ms, client: req.ip, bytes: reply.getHeader('content-length'), ...ctx.get(req) },
      'http request',
    );
  });

  const text = (reply: FastifyReply, code: number, body: string) => reply.code(code).type('text/plain; charset=utf-8').send(body);

  app.get('/boot.ipxe', async (req, reply) => text(reply, 200, renderChainScript({ baseUrl: opts.baseUrl(req) })));

  // No HEAD twin: a HEAD must not burn an agent boot's one fetch.
  app.get<{ Params: { script: string } }>('/boot/:script', { exposeHeadRoute: false }, async (req, reply) => {
    const m = /^([0-9a-fA-F]{2}(?:[-:]?[0-9a-fA-F]{2}){5})\.ipxe$/.exec(req.params.script);
    if (!m) return text(reply, 400, 'expected /boot/<mac>.ipxe, e.g. /boot/52-54-00-12-34-56.ipxe\n');
    const mac = normalizeMac(m[1]!);
    note(req, { mac });
    const d = await sessions.serveScript(mac);
    if (d.kind === 'unknown') {
      const seen = sessions.recordUnknown({ mac, sourceIp: req.ip, source: 'http' });
      note(req, { discovery: seen.outcome });
      return text(reply, 404, '#!ipxe\n# this MAC is not registered with Ironflow (reported for discovery)\nexit 1\n');
    }
    const host = `${d.host.namespace}/${d.host.name}`;
    note(req, { host });
    if (d.kind === 'refuse') {
      note(req, { refused: d.why });
      if (d.invalidated) opts.onBootInvalidated?.(d.host, d.why);
      return text(reply, 403, '#!ipxe\n# Ironflow has no boot for this machine right now\nexit 1\n');
    }
    rememberClient(req.ip, { mac, host });
    return text(reply, 200, renderHostScript({ entry: { ...d.boot, host: d.host }, baseUrl: opts.baseUrl(req), token: d.token }));
  });

  app.get<{ Params: { '*': string } }>('/files/*', async (req, reply) => {
    const requested = req.params['*'];
    note(req, { ...byClientIp.get(req.ip), file: requested.slice(0, 256) });
    let file;
    try {
      file = await openConfined(realRoot, requested);
    } catch (err) {
      if (!(err instanceof FileRefused)) throw err;
      note(req, { refused: err.reason });
      if (err.reason === 'not-found') return text(reply, 404, 'no such file under /files/\n');
      return text(reply, 403, `refused: ${err.reason}\n`);
    }
    const range = parseRange(req.headers.range, file.size);
    reply.header('accept-ranges', 'bytes').type('application/octet-stream');
    if (range === 'unsatisfiable') {
      await file.handle.close();
      return reply.code(416).header('content-range', `bytes */${file.size}`).send();
    }
    const { start, end } = range ?? { start: 0, end: file.size - 1 };
    if (range) reply.code(206).header('content-range', `bytes ${start}-${end}/${file.size}`);
    reply.header('content-length', String(end - start + 1));
    if (req.method === 'HEAD' || file.size === 0) {
      await file.handle.close();
      return reply.send();
    }
    // The stream closes the handle when it ends or the client goes away.
    return reply.send(file.handle.createReadStream({ start, end, highWaterMark: 1 << 20 }));
  });

  for (const p of opts.plugins ?? []) await app.register(p.plugin, { prefix: p.prefix });
  return app;
}

/** Starts the server; `port: 0` picks a free port (returned). */
export async function start(opts: HttpBootOptions): Promise<HttpBootServer> {
  let listening = '';
  // Without a fixed public URL, scripts point back where the machine reached us
  // (its Host header): one server can then serve a loopback lab and a network
  // namespace relayed to it. checkBaseUrl (ipxe-script.ts) refuses anything odd.
  const app = await buildHttpBootApp({
    ...opts,
    baseUrl: (req) => opts.publicUrl ?? (/^[A-Za-z0-9.:[\]-]+$/.test(req.headers.host ?? '') ? `http://${req.headers.host}` : listening),
  });
  await app.listen({ host: opts.host, port: opts.port });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  const hostPart = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  listening = `http://${hostPart}:${port}`;
  opts.log.info({ url: listening, publicUrl: opts.publicUrl ?? listening, filesDir: opts.filesDir }, 'pxe http server listening');
  return { url: listening, port, app, stop: () => app.close() };
}
