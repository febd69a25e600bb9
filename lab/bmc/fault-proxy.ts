import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Agent, request } from 'undici';
import type { LabFaultSpec } from '../../api/lab';

/** The BMC faults this proxy can inject (the rest of LabFault concerns disks and nodes). */
export const PROXY_FAULTS = ['bmc-401', 'bmc-409', 'bmc-503', 'bmc-timeout', 'bmc-session-lost', 'power-stuck'] as const;

export interface FaultProxyOptions {
  /** The Redfish service behind (sushy-emulator), e.g. http://127.0.0.1:8000. */
  upstream: string;
  /**
   * Emulate a Redfish SessionService in front of a Basic-only service
   * (sushy-emulator has none): the root links Sessions, a login checks the
   * credentials upstream and returns a token, requests with that token go up
   * with the login's Basic credentials. Lets the lab count open sessions and
   * inject bmc-session-lost.
   */
  sessions?: boolean;
  /**
   * Per-system BMC credentials (system id -> user/password), checked here
   * because sushy-emulator has one htpasswd per process, while every lab
   * server has a BMC (and a Secret) of its own. The upstream then runs
   * without authentication, on loopback only.
   */
  systemCredentials?: Map<string, { username: string; password: string }>;
  /**
   * This proxy is the BMC of one system only, as a real server's BMC is:
   * the Systems collection lists just it, and other systems' paths are 404.
   * (The plane limits requests in flight per BMC address, so servers that
   * shared one address would share that limit.)
   */
  onlySystem?: string;
  /** Connection pool to the upstream, shared by the proxies of one emulator (default: one of its own). */
  upstreamAgent?: Agent;
  port?: number;
}

export interface FaultProxyStats {
  requests: number;
  sessionsCreated: number;
  sessionsDeleted: number;
  /** Sessions created and not yet deleted (a driver that forgets close() shows here). */
  openSessions: number;
  /** Faults answered, by kind. */
  injected: Record<string, number>;
}

export interface FaultProxy {
  url: string;
  port: number;
  /** Sets (replaces) the faults of one system id; `[]` clears them. */
  setFaults(systemId: string, faults: LabFaultSpec[]): void;
  clearFaults(): void;
  stats(): FaultProxyStats;
  stop(): Promise<void>;
}

interface ActiveFault {
  fault: LabFaultSpec['fault'];
  /** Requests still to fail; undefined = all. */
  left?: number;
}

interface Session {
  id: string;
  basic: string;
  /** bmc-session-lost: the session dies after its first use on a faulty system. */
  used: number;
}

const SESSIONS_PATH = '/redfish/v1/SessionService/Sessions';

/**
 * An HTTP proxy in front of a lab Redfish service that injects the BMC
 * faults of api/lab.ts per system (matched on `/redfish/v1/Systems/<id>`),
 * settable at runtime. Power actions are POSTs to the system's
 * ComputerSystem.Reset; boot changes are PATCHes of the system.
 */
export async function startFaultProxy(o: FaultProxyOptions): Promise<FaultProxy> {
  const upstream = new URL(o.upstream);
  // The upstream is the lab's own emulator on loopback, possibly with its self-signed certificate.
  const agent = o.upstreamAgent ?? new Agent({ connect: { rejectUnauthorized: false } });
  const faults = new Map<string, ActiveFault[]>();
  const sessions = new Map<string, Session>();
  const counters = { requests: 0, sessionsCreated: 0, sessionsDeleted: 0 };
  const injected: Record<string, number> = {};
  const hung = new Set<Socket>();

  const takeFault = (systemId: string | undefined, applies: (f: ActiveFault) => boolean): ActiveFault | undefined => {
    if (!systemId) return undefined;
    const f = faults.get(systemId)?.find((x) => applies(x) && (x.left === undefined || x.left > 0));
    if (!f) return undefined;
    if (f.left !== undefined) f.left -= 1;
    injected[f.fault] = (injected[f.fault] ?? 0) + 1;
    return f;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    counters.requests += 1;
    const url = new URL(req.url ?? '/', 'http://proxy');
    const path = url.pathname.replace(/\/+$/, '');
    const method = req.method ?? 'GET';
    const systemId = /^\/redfish\/v1\/Systems\/([^/]+)/.exec(path)?.[1];
    const isPower = method === 'POST' && /\/Actions\/ComputerSystem\.Reset$/.test(path);
    const isBoot = method === 'PATCH' && systemId !== undefined && path === `/redfish/v1/Systems/${systemId}`;

    if (o.onlySystem && systemId !== undefined && decodeURIComponent(systemId) !== o.onlySystem) {
      return json(res, 404, redfishError('Base.1.0.ResourceMissingAtURI', `no system ${systemId} behind this BMC`));
    }
    if (takeFault(systemId, (f) => f.fault === 'bmc-timeout')) {
      // Never answer; the socket is destroyed when the client gives up or the proxy stops.
      hung.add(req.socket);
      return;
    }
    if (takeFault(systemId, (f) => f.fault === 'bmc-401')) return json(res, 401, redfishError('Base.1.0.InsufficientPrivilege', 'Invalid credentials'));
    if (takeFault(systemId, (f) => f.fault === 'bmc-503')) return json(res, 503, redfishError('Base.1.0.ServiceTemporarilyUnavailable', 'Service unavailable'), { 'Retry-After': '1' });
    if ((isPower || isBoot) && takeFault(systemId, (f) => f.fault === 'bmc-409')) return json(res, 409, redfishError('Base.1.0.ResourceInUse', 'Server is in POST'));
    if (isPower && takeFault(systemId, (f) => f.fault === 'power-stuck')) return void res.writeHead(204).end();

    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host' && k !== 'connection') headers[k] = v;

    if (o.sessions) {
      if (method === 'POST' && path === SESSIONS_PATH) return login(res, body);
      if (method === 'DELETE' && path.startsWith(`${SESSIONS_PATH}/`)) {
        const id = path.slice(SESSIONS_PATH.length + 1);
        for (const [token, s] of sessions) if (s.id === id) sessions.delete(token);
        counters.sessionsDeleted += 1;
        return void res.writeHead(204).end();
      }
      const token = headers['x-auth-token'];
      if (token) {
        const s = sessions.get(token);
        if (!s) return json(res, 401, redfishError('Base.1.0.NoValidSession', 'No valid session'));
        delete headers['x-auth-token'];
        headers.authorization = s.basic;
        s.used += 1;
        if (faults.get(systemId ?? '')?.some((f) => f.fault === 'bmc-session-lost')) {
          sessions.delete(token);
          injected['bmc-session-lost'] = (injected['bmc-session-lost'] ?? 0) + 1;
        }
      }
    }

    if (o.systemCredentials) {
      const basicOf = (c: { username: string; password: string }) => `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
      const given = headers.authorization;
      const expected = systemId ? o.systemCredentials.get(systemId) : undefined;
      const anyMatch = [...o.systemCredentials.values()].some((c) => basicOf(c) === given);
      // The service root stays open, as on real BMCs; a system needs its own credentials.
      const isRoot = path === '/redfish/v1' || path === '';
      if (!isRoot && (expected ? basicOf(expected) !== given : !anyMatch)) return json(res, 401, redfishError('Base.1.0.InsufficientPrivilege', 'Invalid credentials'));
      delete headers.authorization;
    }

    const up = await request(new URL(url.pathname + url.search, upstream), {
      method: method as 'GET',
      headers,
      body: body.length ? body : undefined,
      dispatcher: agent,
    });
    let text = Buffer.from(await up.body.arrayBuffer());
    const outHeaders: Record<string, string> = {};
    for (const [k, v] of Object.entries(up.headers)) if (typeof v === 'string' && !['content-length', 'transfer-encoding', 'connection'].includes(k)) outHeaders[k] = v;
    if (o.onlySystem && method === 'GET' && path === '/redfish/v1/Systems' && up.statusCode === 200) {
      const col = JSON.parse(text.toString('utf8')) as { Members?: Array<{ '@odata.id': string }> };
      col.Members = (col.Members ?? []).filter((m) => m['@odata.id'].replace(/\/+$/, '').endsWith(`/${o.onlySystem}`));
      text = Buffer.from(JSON.stringify({ ...col, 'Members@odata.count': col.Members.length }));
    }
    if (o.sessions && method === 'GET' && (path === '/redfish/v1' || path === '') && up.statusCode === 200) {
      const root = JSON.parse(text.toString('utf8')) as Record<string, unknown>;
      root.SessionService = { '@odata.id': '/redfish/v1/SessionService' };
      root.Links = { ...(root.Links as object), Sessions: { '@odata.id': SESSIONS_PATH } };
      text = Buffer.from(JSON.stringify(root));
    }
    res.writeHead(up.statusCode, outHeaders).end(text);
  };

  const login = async (res: ServerResponse, body: Buffer) => {
    let creds: { UserName?: string; Password?: string };
    try {
      creds = JSON.parse(body.toString('utf8')) as typeof creds;
    } catch {
      return json(res, 400, redfishError('Base.1.0.MalformedJSON', 'Malformed JSON'));
    }
    const basic = `Basic ${Buffer.from(`${creds.UserName ?? ''}:${creds.Password ?? ''}`).toString('base64')}`;
    if (o.systemCredentials) {
      const ok = [...o.systemCredentials.values()].some((c) => c.username === creds.UserName && c.password === creds.Password);
      if (!ok) return json(res, 401, redfishError('Base.1.0.InsufficientPrivilege', 'Invalid credentials'));
    } else {
      // The upstream decides whether the credentials are good (sushy checks its htpasswd).
      const check = await request(new URL('/redfish/v1/Systems', upstream), { headers: { authorization: basic }, dispatcher: agent });
      await check.body.dump();
      if (check.statusCode === 401 || check.statusCode === 403) return json(res, 401, redfishError('Base.1.0.InsufficientPrivilege', 'Invalid credentials'));
    }
    const id = randomBytes(8).toString('hex');
    const token = randomBytes(24).toString('hex');
    sessions.set(token, { id, basic, used: 0 });
    counters.sessionsCreated += 1;
    json(res, 201, { '@odata.id': `${SESSIONS_PATH}/${id}`, Id: id, UserName: creds.UserName }, { 'X-Auth-Token': token, Location: `${SESSIONS_PATH}/${id}` });
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      handle(req, res, Buffer.concat(chunks)).catch((err: Error) => {
        if (!res.headersSent) json(res, 502, redfishError('Base.1.0.InternalError', `lab fault proxy: upstream failed: ${err.message}`));
        else res.destroy();
      });
    });
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(o.port ?? 0, '127.0.0.1', () => resolve()));
  const port = (server.address() as { port: number }).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    setFaults(systemId, list) {
      for (const f of list) if (!(PROXY_FAULTS as readonly string[]).includes(f.fault)) throw new Error(`fault proxy cannot inject ${f.fault}; it injects ${PROXY_FAULTS.join(', ')}`);
      faults.set(systemId, list.map((f) => ({ fault: f.fault, left: f.fault === 'bmc-409' || f.fault === 'bmc-503' ? f.count : undefined })));
    },
    clearFaults: () => faults.clear(),
    stats: () => ({ ...counters, openSessions: sessions.size, injected: { ...injected } }),
    stop: async () => {
      for (const s of hung) s.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      if (!o.upstreamAgent) await agent.close();
    },
  };
}

function redfishError(id: string, message: string) {
  return { error: { code: id, message, '@Message.ExtendedInfo': [{ MessageId: id, Message: message }] } };
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers }).end(JSON.stringify(body));
}
