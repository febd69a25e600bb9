/**
 * The agent API (api/agent.ts) as a fastify plugin, registered by the
 * provisioning HTTP server (activities/pxe/http-boot.ts) next to the PXE
 * routes, over the durable session store.
 *
 * Every route checks the token first (401 without a known one, 403 for one
 * of an ended boot or of another host), then the per-token rate limit (429),
 * and only then looks at the body. A final report is accepted only for the
 * command its token was issued for, only with evidence that matches what the
 * plane expects (./evidence.ts), and only once it is on disk; the workflow
 * gets it from the store's outbox (./report-relay.ts), so an accepted report
 * survives Temporal being away and the plane being killed.
 *
 * Bounds: body limits per route, a token bucket per token (burst 60, then 20
 * per second: an agent polls a few times a second at most), field sizes in
 * ./report-schema.ts. Responses and log lines never repeat what a client
 * sent (no MACs, ids, URLs or values from the request): they name the
 * plane's own facts only.
 */
import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { AGENT_API_PREFIX, AGENT_TOKEN_HEADER, type AgentCommand, type AgentReport, type LookupResponse } from '../../api/agent';
import type { HostRef } from '../../api/host';
import { checkDeployEvidence, checkEraseEvidence } from './evidence';
import type { HostWarn } from './host-warnings';
import type { ReportRelay } from './report-relay';
import { parseAgentReport } from './report-schema';
import { hostKey, sameHost, type SessionRecord } from './session-state';
import type { SessionStore } from './session-store';
import { KeyedBuckets } from './token-bucket';

export interface AgentApiLimits {
  /** Per token: calls at once, then per second. */
  burst: number;
  perSecond: number;
  /** Bytes of a report body (an inspection of a big server fits with room to spare). */
  reportBodyBytes: number;
  /** Bytes of a lookup body. */
  lookupBodyBytes: number;
  /** Final reports refused for evidence before the plane ends the session (a real agent whose disks changed). */
  evidenceStrikes: number;
}

export const AGENT_API_LIMITS: AgentApiLimits = { burst: 60, perSecond: 20, reportBodyBytes: 256 * 1024, lookupBodyBytes: 1024, evidenceStrikes: 3 };

export interface AgentApiOptions {
  sessions: SessionStore;
  relay: ReportRelay;
  /** Warning Events on the BareMetalHost (./host-warnings.ts). */
  warn: HostWarn;
  /** Reads the user data Secret of a deploy when its agent asks (bytes are never stored by the plane). */
  userData: (namespace: string, secretName: string) => Promise<Buffer>;
  pollIntervalSeconds?: number;
  limits?: Partial<AgentApiLimits>;
}

interface HostParams { ns: string; name: string }
type Caller = { host: HostRef; session: SessionRecord };

const NONE: AgentCommand = { id: 'none', type: 'none' };
/** A report that ends its command (the agent stops after `poweroff`'s progress report). */
const isFinal = (r: AgentReport) => r.status !== 'progress' || r.type === 'poweroff';

export const agentApiPlugin: FastifyPluginAsync<AgentApiOptions> = async (app, opts) => {
  const { sessions, relay, warn } = opts;
  const limits = { ...AGENT_API_LIMITS, ...opts.limits };
  const buckets = new KeyedBuckets(limits.burst, limits.perSecond);

  // Fastify's own messages repeat pieces of the body (a JSON parse error quotes the bad token): ours say what to fix only.
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    const error = err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'the request body is larger than this route takes'
      : err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 'send the body as application/json'
      : status === 400 ? 'the request body is not valid JSON'
      : status < 500 ? 'the request was refused'
      : 'internal error';
    if (status >= 500) req.log.error({ err }, 'agent API error');
    return reply.code(status).send({ error });
  });

  const callers = new WeakMap<FastifyRequest, Caller>();

  /**
   * Token, then host, then rate, in onRequest: a refused call costs a hash,
   * never the parsing of its body. Resolves the caller or has replied.
   */
  function authorize(req: FastifyRequest, reply: FastifyReply, pathHost?: HostRef): Caller | undefined {
    const header = req.headers[AGENT_TOKEN_HEADER];
    const verdict = sessions.authenticate(Array.isArray(header) ? header[0] : header);
    if (!verdict.ok) {
      // A known token where it no longer belongs: a replay, or the agent of a boot the plane gave up on still
      // running. The host should know. (The agent of a boot that finished its command, polling until it is
      // powered off, is told to stop without an Event: that is every normal boot's end.)
      const idlePoll = verdict.finished && req.method === 'GET';
      if (verdict.owner && verdict.status === 403 && !idlePoll) {
        warn(verdict.owner, 'AgentTokenRefused', `an agent call with the token of an ended boot was refused (${verdict.reason})`);
      }
      req.log.warn({ status: verdict.status }, `agent call refused: ${verdict.reason}`);
      void reply.code(verdict.status).send({ error: verdict.reason });
      return undefined;
    }
    if (pathHost && !sameHost(pathHost, verdict.host)) {
      const message = `a call for another host presented the agent token of ${hostKey(verdict.host)}; refused`;
      warn(verdict.host, 'AgentTokenWrongHost', message);
      req.log.warn({ host: hostKey(verdict.host), status: 403 }, message);
      void reply.code(403).send({ error: 'the token belongs to another host' });
      return undefined;
    }
    const bucket = buckets.bucket(verdict.session.tokenSha256!);
    if (!bucket.take()) {
      void reply.code(429).header('retry-after', String(bucket.retryAfterSeconds())).send({ error: `more than ${limits.perSecond} calls per second with this token; slow down` });
      return undefined;
    }
    sessions.markRunning(verdict.host, verdict.session.bootId);
    return { host: verdict.host, session: verdict.session };
  }

  const onRequest = async (req: FastifyRequest, reply: FastifyReply) => {
    const params = req.params as Partial<HostParams>;
    const who = authorize(req, reply, params.ns !== undefined && params.name !== undefined ? { namespace: params.ns, name: params.name } : undefined);
    if (who) callers.set(req, who);
    return reply.sent ? reply : undefined;
  };
  const caller = (req: FastifyRequest): Caller => callers.get(req)!;

  app.post(`${AGENT_API_PREFIX}/lookup`, { bodyLimit: limits.lookupBodyBytes, onRequest }, async (req, reply) => {
    const who = caller(req);
    const bootId = (req.body as { bootId?: unknown } | undefined)?.bootId;
    if (bootId !== undefined && bootId !== who.session.bootId) {
      return reply.code(403).send({ error: 'the boot id on this kernel command line is not the boot the token belongs to' });
    }
    const body: LookupResponse = { namespace: who.host.namespace, name: who.host.name, bootId: who.session.bootId, pollIntervalSeconds: opts.pollIntervalSeconds ?? 5 };
    return reply.header('cache-control', 'no-store').send(body);
  });

  app.get<{ Params: HostParams }>(`${AGENT_API_PREFIX}/hosts/:ns/:name/command`, { onRequest }, async (req) => {
    const who = caller(req);
    // After its final report the session's agent only idles: one command per boot.
    return { command: who.session.state === 'finished' ? NONE : who.session.command };
  });

  app.post<{ Params: HostParams }>(`${AGENT_API_PREFIX}/hosts/:ns/:name/reports`, { bodyLimit: limits.reportBodyBytes, onRequest }, async (req, reply) => {
    const { host, session } = caller(req);
    const parsed = parseAgentReport(req.body);
    if (!parsed.ok) return reply.code(400).send({ error: parsed.error });
    const report = parsed.report;
    const cmd = session.command;
    if (report.commandId !== cmd.id || report.type !== cmd.type) {
      warn(host, 'AgentReportRefused', `a report for a command that was not issued to boot ${session.bootId} was refused (the boot runs ${cmd.type} ${cmd.id})`);
      return reply.code(409).send({ error: `this boot runs command ${cmd.id} (${cmd.type}); the report is for another command` });
    }
    if (session.state === 'finished') {
      // A final report retried after a lost 204: already kept (and delivered or queued). Anything else for it is refused.
      if (isFinal(report)) return reply.code(204).send();
      return reply.code(409).send({ error: `command ${cmd.id} has finished` });
    }
    if (!isFinal(report)) {
      if (report.status === 'progress') sessions.recordProgress(host, session.bootId, { message: report.message, percent: report.percent });
      relay.progress(host, session.bootId);
      return reply.code(204).send();
    }
    const mismatch = report.status !== 'ok' ? undefined
      : report.type === 'deploy' ? checkDeployEvidence(session, report.data)
      : report.type === 'erase' ? checkEraseEvidence(session, report.data)
      : undefined;
    if (mismatch) {
      const strikes = sessions.noteEvidenceMismatch(host, session.bootId);
      warn(host, 'AgentEvidenceMismatch', `${cmd.type} report of boot ${session.bootId} refused: ${mismatch}`);
      req.log.warn({ host: hostKey(host), bootId: session.bootId, commandId: cmd.id, strikes }, `agent report refused: ${mismatch}`);
      if (strikes >= limits.evidenceStrikes) {
        const reason = `the plane ended boot ${session.bootId}: ${strikes} ${cmd.type} reports did not carry matching evidence (last: ${mismatch})`;
        await sessions.invalidate(host, session.bootId, reason);
        warn(host, 'AgentBootInvalidated', reason);
        relay.ended(host, session.bootId);
        relay.kick();
      }
      return reply.code(422).send({ error: `evidence does not match: ${mismatch}` });
    }
    try {
      await sessions.finish(host, session.bootId, report);
    } catch (err) {
      req.log.error({ host: hostKey(host), bootId: session.bootId, err: (err as Error).message }, 'final agent report not stored');
      return reply.code(503).send({ error: 'the plane could not store the report; retry' });
    }
    req.log.info({ host: hostKey(host), bootId: session.bootId, commandId: cmd.id, status: report.status }, 'final agent report accepted');
    relay.ended(host, session.bootId);
    relay.kick();
    return reply.code(204).send();
  });

  app.get<{ Params: HostParams }>(`${AGENT_API_PREFIX}/hosts/:ns/:name/user-data`, { onRequest }, async (req, reply) => {
    const who = caller(req);
    const { session } = who;
    if (session.command.type !== 'deploy' || !session.userData || session.state === 'finished') {
      return reply.code(404).send({ error: 'no deploy with user data is running on this boot' });
    }
    let data: Buffer;
    try {
      data = await opts.userData(session.userData.namespace, session.userData.name);
    } catch (err) {
      // The reader's message names the Secret and key, never the content.
      req.log.warn({ host: hostKey(who.host), bootId: session.bootId, err: (err as Error).message }, 'user data not served');
      return reply.code(503).send({ error: 'the plane could not read the user data Secret; retry' });
    }
    return reply.header('cache-control', 'no-store').type('application/octet-stream').send(data);
  });
};

/** The plugin with its options bound, for servers that take `FastifyPluginAsync` without options. */
export function agentApi(opts: AgentApiOptions): FastifyPluginAsync {
  return async (app) => agentApiPlugin(app, opts);
}
