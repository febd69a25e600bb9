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
 * verify certificates, and only ever authenticate with sessions; LAB.md):
 *
 * - TLS is verified by default, with an optional per-BMC CA bundle, and can be
 *   turned off per host (`spec.bmc.disableCertificateVerification`).
 * - Authentication follows Ironic's sushy: a Redfish session when the service
 *   root links a SessionService and the login returns a token, else HTTP Basic.
 *   One session per transport, re-established once if the BMC drops it, and
 *   DELETEd in close() (BMCs such as iDRAC refuse new sessions past ~8).
 * - Every status and network error becomes a typed failure (errors.ts).
 */
export class RedfishTransport {
  readonly origin: string;
  private readonly agent: Agent;
  private auth: Auth = { kind: 'unknown' };
  private login?: Promise<void>;

  constructor(private readonly o: RedfishTransportOptions) {
    this.origin = `${o.endpoint.scheme}://${endpointHostPort(o.endpoint)}`;
    this.agent = new Agent({
      connect: {
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
    const url = target.startsWith('http') ? target : `${this.origin}${target}`;
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

  /** DELETEs the current session, if any; best effort (it may be gone already). */
  private async endSession(): Promise<void> {
    const auth = this.auth;
    this.auth = { kind: 'unknown' };
    if (auth.kind === 'session' && auth.location) {
      await this.o
        .limit(() => fetch(new URL(auth.location!, this.origin), {
          method: 'DELETE',
          headers: { 'X-Auth-Token': auth.token },
          dispatcher: this.agent,
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
    const res = await this.send(`${this.origin}${sessionsPath}`, 'POST', {
      body: { UserName: this.o.credentials.username, Password: this.o.credentials.password },
    }, false);
    const token = res.headers.get('x-auth-token');
    if (res.status === 401 || res.status === 403) throw this.o.failures.credentialsRejected(`HTTP ${res.status}`);
    if (res.status < 200 || res.status >= 300 || !token) {
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
    this.auth = { kind: 'session', token, location: res.headers.get('location') ?? body['@odata.id'] };
  }

  private async send(url: string, method: string, init: RequestInitLite, authenticate: boolean): Promise<Exchange> {
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
