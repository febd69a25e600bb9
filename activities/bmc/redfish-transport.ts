import { rootCertificates } from 'node:tls';
import { Agent, fetch } from 'undici';
import type { BmcCredentials, BmcEndpoint } from '../../api/bmc';
import { endpointHostPort } from './address';
import { isApplicationFailure, type BmcFailures } from './errors';

/** Runs `fn` inside the per-BMC concurrency limit (see driver.ts). */
export type RequestLimiter = <T>(fn: () => Promise<T>) => Promise<T>;

export interface RedfishTransportOptions {
  endpoint: BmcEndpoint;
  credentials: BmcCredentials;
  failures: BmcFailures;
  /** Default false: certificates are verified against the system CAs (plus caBundle). */
  disableCertificateVerification?: boolean;
  /** PEM of extra CAs to trust for this BMC (added to the system CAs). */
  caBundle?: string;
  /** Limit for one HTTP exchange, connect to last byte. */
  timeoutMs: number;
  limit: RequestLimiter;
}

export interface RedfishResponse<T> {
  status: number;
  data: T;
  headers: Headers;
}

export interface RequestInitLite {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
  /** Inventory reads: a missing or broken resource (404/405/500/501) yields `data: undefined` instead of a failure. */
  optional?: boolean;
}

/** A whole HTTP exchange, body read: the per-BMC limit covers the exchange to its last byte. */
interface Exchange {
  status: number;
  headers: Headers;
  text: string;
}

type Auth = { kind: 'unknown' } | { kind: 'basic' } | { kind: 'session'; token: string; location?: string };

/**
 * How long to wait for a TCP (and TLS) connection to a BMC. A BMC that is
 * off the network answers nothing at all; 5 s tells that apart from a slow
 * one (which connects at once and then takes its time to answer) and lets
 * the host's status say "unreachable" while the outage lasts.
 */
export const CONNECT_TIMEOUT_MS = 5_000;

/** Same-origin redirects followed per request (some BMCs redirect /redfish/v1 to /redfish/v1/). */
const MAX_REDIRECTS = 3;

/** Error codes Node/undici use for a certificate that does not verify. */
const TLS_VERIFY_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * The HTTP layer under redfish-client (which would always use https, never
 * verify certificates, and only ever authenticate with sessions):
 *
 * - TLS is verified by default, with an optional per-BMC CA bundle, and can be
 *   turned off per host (`spec.bmc.disableCertificateVerification`).
 * - Authentication follows Ironic's sushy: a Redfish session when the service
 *   root links a SessionService and the login returns a token, else HTTP Basic.
 *   One session per transport, re-established once if the BMC drops it, and
 *   DELETEd in close() (BMCs such as iDRAC refuse new sessions past ~8).
 * - Every status and network error becomes a typed failure (errors.ts).
 * - It stays on its origin: every URL it is asked to fetch (a path, an
 *   `@odata.id` a BMC returned, an action target, the SessionService, the
 *   session's Location, a redirect) must resolve to the scheme, host and port
 *   of spec.bmc.address, or nothing is sent. Credentials (Basic, X-Auth-Token)
 *   therefore never reach another host, whatever the BMC links to.
 */
export class RedfishTransport {
  /** `scheme://host:port` of the BMC, as requests are built from it. */
  readonly origin: string;
  /** The same, as WHATWG URL spells an origin (default ports dropped), for comparisons. */
  private readonly canonicalOrigin: string;
  private readonly agent: Agent;
  private auth: Auth = { kind: 'unknown' };
  private login?: Promise<void>;

  constructor(private readonly o: RedfishTransportOptions) {
    this.origin = `${o.endpoint.scheme}://${endpointHostPort(o.endpoint)}`;
    this.canonicalOrigin = new URL(this.origin).origin;
    this.agent = new Agent({
      connect: {
        // A BMC that is down or unroutable is reported unreachable after this,
        // whatever the request timeout (which covers slow answers) says.
        timeout: Math.min(CONNECT_TIMEOUT_MS, o.timeoutMs),
        rejectUnauthorized: !o.disableCertificateVerification,
        // `ca` replaces Node's default roots, so keep them beside the extra bundle.
        ...(o.caBundle ? { ca: [...rootCertificates, o.caBundle] } : {}),
      },
      // A BMC's web server is small: do not keep idle sockets around between activities.
      keepAliveTimeout: 2_000,
    });
  }

  /** The auth mode in use after the first request ('unknown' before). */
  get authKind(): Auth['kind'] {
    return this.auth.kind;
  }

  /**
   * One authenticated request. `target` is a path (`/redfish/v1/...`) or a
   * full URL on this BMC. `authenticate: false` is for the service root only.
   */
  async request<T>(target: string, init: RequestInitLite = {}, authenticate = true): Promise<RedfishResponse<T>> {
    const url = this.onOrigin(target, 'a resource').href;
    const method = init.method ?? 'GET';
    if (authenticate) await this.ensureAuth();
    let res = await this.send(url, method, init, authenticate);
    if (res.status === 401 && this.auth.kind === 'session') {
      // The BMC forgot our session (timeout, BMC reset, session-lost fault): log in again, once.
      // End the old one first in case it still exists, so a BMC that
      // rejects requests but keeps sessions does not fill its session table.
      await this.endSession();
      await this.ensureAuth();
      res = await this.send(url, method, init, authenticate);
    }
    return this.interpret<T>(res, method, url, init.optional ?? false);
  }

  /** Ends the session (if any) and the connection pool. Never throws: it runs in finally blocks. */
  async close(): Promise<void> {
    await this.endSession();
    await this.agent.close().catch(() => undefined);
  }

  /**
   * `target` (a path or a URL a BMC gave us) as a URL on this BMC, or a
   * refusal. Refused: another scheme, host or port; userinfo; anything that
   * does not parse (e.g. redfish-client gluing an absolute link to its base).
   * Example: on http://127.0.0.1:8000, `/redfish/v1/Systems/1` and
   * `http://127.0.0.1:8000/redfish/v1` pass; `//10.0.0.9/x`,
   * `https://127.0.0.1:8000/x` and `http://127.0.0.1:9000/x` are refused.
   */
  private onOrigin(target: string, what: string): URL {
    let url: URL;
    try {
      url = new URL(target, `${this.origin}/`);
    } catch {
      throw this.o.failures.offOrigin(what, target);
    }
    if (url.origin !== this.canonicalOrigin || url.username || url.password) throw this.o.failures.offOrigin(what, target);
    return url;
  }

  /** DELETEs the current session, if any; best effort (it may be gone already). */
  private async endSession(): Promise<void> {
    const auth = this.auth;
    this.auth = { kind: 'unknown' };
    if (auth.kind === 'session' && auth.location) {
      // The location was checked to be on this BMC when the session was made.
      await this.o
        .limit(() => fetch(auth.location!, {
          method: 'DELETE',
          headers: { 'X-Auth-Token': auth.token },
          dispatcher: this.agent,
          redirect: 'manual',
          signal: AbortSignal.timeout(this.o.timeoutMs),
        }))
        .then((r) => r.arrayBuffer())
        .catch(() => undefined);
    }
  }

  private ensureAuth(): Promise<void> {
    if (this.auth.kind !== 'unknown') return Promise.resolve();
    // Concurrent first requests share one login.
    this.login ??= this.establish().finally(() => {
      this.login = undefined;
    });
    return this.login;
  }

  private async establish(): Promise<void> {
    // The service root is readable without credentials (Redfish spec, DSP0266 §13.3.1).
    const root = await this.request<{ Links?: { Sessions?: { '@odata.id'?: string } }; SessionService?: unknown }>('/redfish/v1', {}, false);
    const sessionsPath = root.data.Links?.Sessions?.['@odata.id'] ?? (root.data.SessionService ? '/redfish/v1/SessionService/Sessions' : undefined);
    if (!sessionsPath) {
      this.auth = { kind: 'basic' };
      return;
    }
    // Before the password is put in a body: the SessionService must be on this BMC.
    const sessions = this.onOrigin(sessionsPath, 'its SessionService (Links.Sessions)');
    const res = await this.send(sessions.href, 'POST', {
      body: { UserName: this.o.credentials.username, Password: this.o.credentials.password },
    }, false);
    const token = res.headers.get('x-auth-token');
    if (res.status === 401 || res.status === 403) throw this.o.failures.credentialsRejected(`HTTP ${res.status}`);
    // A token that is not a plain header value would be refused by the HTTP
    // stack with an error quoting it; treat it like no token.
    if (res.status < 200 || res.status >= 300 || !token || !/^[\x21-\x7e]{1,4096}$/.test(token)) {
      // Some services list Sessions but hand out no token (DMTF mockups, old
      // firmware): Basic still works there, as sushy falls back too.
      this.auth = { kind: 'basic' };
      return;
    }
    let body: { '@odata.id'?: string } = {};
    try {
      body = JSON.parse(res.text) as typeof body;
    } catch {
      // Location is what matters; the body is a fallback for it.
    }
    const location = res.headers.get('location') ?? body['@odata.id'];
    // The token goes back with the DELETE in close(): only ever to this BMC.
    this.auth = { kind: 'session', token, location: location ? this.onOrigin(location, 'the session it created (Location)').href : undefined };
  }

  /**
   * One exchange. Redirects are followed by hand, at most {@link MAX_REDIRECTS}
   * and only on this origin: fetch would follow them anywhere and keep the
   * X-Auth-Token header on the way.
   */
  private async send(url: string, method: string, init: RequestInitLite, authenticate: boolean): Promise<Exchange> {
    let target = url;
    for (let hop = 0; ; hop++) {
      const res = await this.sendOnce(target, method, init, authenticate);
      const location = res.headers.get('location');
      if (res.status < 300 || res.status >= 400 || res.status === 304 || !location) return res;
      if (hop >= MAX_REDIRECTS) throw this.o.failures.protocol(`more than ${MAX_REDIRECTS} redirects from ${method} ${new URL(url).pathname}`);
      target = this.onOrigin(new URL(location, target).href, `${method} ${new URL(url).pathname} (HTTP ${res.status} redirect)`).href;
    }
  }

  private async sendOnce(url: string, method: string, init: RequestInitLite, authenticate: boolean): Promise<Exchange> {
    const headers: Record<string, string> = { Accept: 'application/json', ...init.headers };
    if (init.body !== undefined) headers['Content-Type'] = 'application/json';
    if (authenticate && this.auth.kind === 'session') headers['X-Auth-Token'] = this.auth.token;
    if (authenticate && this.auth.kind === 'basic') {
      const { username, password } = this.o.credentials;
      headers.Authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    }
    try {
      return await this.o.limit(async () => {
        const res = await fetch(url, {
          method,
          headers,
          body: init.body === undefined ? undefined : typeof init.body === 'string' ? init.body : JSON.stringify(init.body),
          dispatcher: this.agent,
          redirect: 'manual',
          signal: AbortSignal.timeout(this.o.timeoutMs),
        });
        return { status: res.status, headers: res.headers as unknown as Headers, text: await res.text() };
      });
    } catch (err) {
      throw this.networkFailure(err);
    }
  }

  private interpret<T>(res: Exchange, method: string, url: string, optional: boolean): RedfishResponse<T> {
    const path = new URL(url).pathname;
    const { text, status: s } = res;
    if (s === 401 || s === 403) throw this.o.failures.credentialsRejected(`HTTP ${s}`);
    if (s === 409 || s === 429 || s === 503) throw this.o.failures.busy(`HTTP ${s} on ${method} ${path}`);
    // A linked resource the service cannot render (sushy's fake driver links Storage and answers 500).
    if (optional && (s === 404 || s === 405 || s === 500 || s === 501)) return { status: s, data: undefined as T, headers: res.headers };
    if (s >= 500) throw this.o.failures.protocol(`HTTP ${s} on ${method} ${path}: ${redfishMessage(text)}`);
    if (s >= 400) throw this.o.failures.unsupported(`${method} ${path} (HTTP ${s}: ${redfishMessage(text)})`);
    let data = {} as T;
    if (text.trim()) {
      try {
        data = JSON.parse(text) as T;
      } catch {
        throw this.o.failures.protocol(`HTTP ${s} on ${method} ${path} with a body that is not JSON`);
      }
    }
    return { status: s, data, headers: res.headers };
  }

  private networkFailure(err: unknown): Error {
    if (isApplicationFailure(err)) return err;
    const e = err as { name?: string; message?: string; code?: string; cause?: { code?: string; message?: string } };
    if (e.name === 'TimeoutError' || e.name === 'AbortError') return this.o.failures.unreachable(`no answer within ${this.o.timeoutMs} ms`);
    const code = e.cause?.code ?? e.code;
    if (code && TLS_VERIFY_CODES.has(code)) return this.o.failures.untrustedCertificate(code);
    if (code === 'UND_ERR_CONNECT_TIMEOUT') return this.o.failures.unreachable(`no TCP connection within ${Math.min(CONNECT_TIMEOUT_MS, this.o.timeoutMs)} ms`);
    if (code === 'ECONNREFUSED') return this.o.failures.unreachable('connection refused: nothing listens on that port');
    return this.o.failures.unreachable(code ?? e.cause?.message ?? e.message ?? String(err));
  }
}

/** The first Redfish error message of a body, short, for operator-facing errors. */
function redfishMessage(text: string): string {
  try {
    const j = JSON.parse(text) as { error?: { message?: string; '@Message.ExtendedInfo'?: Array<{ Message?: string }> } };
    const m = j.error?.['@Message.ExtendedInfo']?.[0]?.Message ?? j.error?.message;
    if (m) return m.slice(0, 200);
  } catch {
    // not JSON: fall through
  }
  return text.replace(/\s+/g, ' ').slice(0, 200) || 'empty body';
}
