/**
 * The agent API (api/agent.ts) as a fastify plugin, registered by the
 * provisioning HTTP server (activities/pxe/http-boot.ts) next to the PXE
 * routes. Every per-host route checks the token BEFORE anything else, so a
 * forged call (no token, a wrong one, another host's or an old boot's) is
 * refused with 401/403 and changes nothing: no report is forwarded, no
 * command is consumed, no user data leaves.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import {
  AGENT_API_PREFIX, AGENT_TOKEN_HEADER, type AgentCommand, type AgentReportSignal, type LookupResponse,
} from '../../api/agent';
import type { HostRef } from '../../api/host';
import { normalizeMac } from '../../api/pxe';
import type { AgentCommandStore } from './commands';
import { parseAgentReport } from './report-schema';
import type { AgentTokenStore } from './tokens';

export interface AgentApiOptions {
  /** Which host (and its current boot) a MAC belongs to; undefined = unknown MAC. */
  lookup: (mac: string) => Promise<{ host: HostRef; bootId: string } | undefined> | { host: HostRef; bootId: string } | undefined;
  tokens: AgentTokenStore;
  commands: AgentCommandStore;
  /** Hands an accepted report to the host workflow (production: a Temporal signal). */
  onReport: (host: HostRef, signal: AgentReportSignal) => Promise<void>;
  /** User data for the pending deploy; default: what sendAgentCommand stored. */
  userData?: (host: HostRef, bootId: string) => Buffer | undefined;
  pollIntervalSeconds?: number;
  now?: () => Date;
}

interface HostParams { ns: string; name: string }
type HostRequest = FastifyRequest<{ Params: HostParams }>;

const NONE: AgentCommand = { id: 'none', type: 'none' };

/** A report that ends its command (the agent stops after `poweroff`'s progress report). */
const isFinal = (r: { status: string; type: string }) => r.status !== 'progress' || r.type === 'poweroff';

export const agentApiPlugin: FastifyPluginAsync<AgentApiOptions> = async (app, opts) => {
  const { tokens, commands } = opts;
  const now = opts.now ?? (() => new Date());
  const userData = opts.userData ?? ((host, bootId) => commands.pendingUserData(host, bootId));

  /** The token check; resolves the caller's boot or has already replied 401/403. */
  function authorize(req: HostRequest, reply: FastifyReply): { host: HostRef; bootId: string } | undefined {
    const host = { namespace: req.params.ns, name: req.params.name };
    const header = req.headers[AGENT_TOKEN_HEADER];
    const verdict = tokens.verify(host, Array.isArray(header) ? header[0] : header);
    if (verdict.ok) return { host, bootId: verdict.bootId };
    req.log.warn({ host: `${host.namespace}/${host.name}`, status: verdict.status }, `agent call refused: ${verdict.reason}`);
    void reply.code(verdict.status).send({ error: verdict.reason });
    return undefined;
  }

  app.post<{ Body: { macs?: unknown; bootId?: unknown } }>(`${AGENT_API_PREFIX}/lookup`, async (req, reply) => {
    const { macs, bootId } = req.body ?? {};
    if (!Array.isArray(macs) || macs.length === 0 || !macs.every((m) => typeof m === 'string')) {
      return reply.code(400).send({ error: 'lookup field /macs: must be a non-empty array of MAC strings' });
    }
    if (bootId !== undefined && typeof bootId !== 'string') return reply.code(400).send({ error: 'lookup field /bootId: must be a string' });
    let found: { host: HostRef; bootId: string } | undefined;
    for (const raw of macs as string[]) {
      let mac: string;
      try { mac = normalizeMac(raw); } catch (err) { return reply.code(400).send({ error: `lookup field /macs: ${(err as Error).message}` }); }
      found = await opts.lookup(mac);
      if (found) break;
    }
    if (!found) return reply.code(404).send({ error: `no host has any of the MACs ${(macs as string[]).join(', ')}` });
    const who = `${found.host.namespace}/${found.host.name}`;
    if (bootId !== undefined && bootId !== found.bootId) {
      return reply.code(403).send({ error: `boot ${bootId} is not the current boot of ${who}: this agent is stale` });
    }
    // The workflow's current boot is authoritative; catch the token store up
    // if prepareBoot ran in another process or was lost on a restart.
    if (tokens.currentBoot(found.host) !== found.bootId) tokens.prepareBoot(found.host, found.bootId);
    const issued = tokens.issue(found.host, found.bootId);
    if (!issued.ok) return reply.code(issued.status).send({ error: issued.reason });
    req.log.info({ host: who, bootId: found.bootId }, 'agent token issued');
    const body: LookupResponse = {
      namespace: found.host.namespace, name: found.host.name, bootId: found.bootId,
      token: issued.token, pollIntervalSeconds: opts.pollIntervalSeconds ?? 5,
    };
    return reply.header('cache-control', 'no-store').send(body);
  });

  app.get<{ Params: HostParams }>(`${AGENT_API_PREFIX}/hosts/:ns/:name/command`, async (req, reply) => {
    const who = authorize(req, reply);
    if (!who) return reply;
    return { command: commands.pending(who.host, who.bootId) ?? NONE };
  });

  app.post<{ Params: HostParams }>(`${AGENT_API_PREFIX}/hosts/:ns/:name/reports`, async (req, reply) => {
    const who = authorize(req, reply);
    if (!who) return reply;
    const parsed = parseAgentReport(req.body);
    if (!parsed.ok) return reply.code(400).send({ error: parsed.error });
    const report = parsed.report;
    // A final report retried after a lost 204 is acknowledged, not forwarded twice.
    if (commands.isFinished(who.host, who.bootId, report.commandId)) return reply.code(204).send();
    const pending = commands.pending(who.host, who.bootId);
    if (pending?.id !== report.commandId) {
      return reply.code(409).send({ error: `command ${report.commandId} is not pending for ${who.host.namespace}/${who.host.name}` });
    }
    if (pending.type !== report.type) {
      return reply.code(400).send({ error: `report field /type: command ${pending.id} is a ${pending.type}, not ${report.type}` });
    }
    // Forward first, consume after: if the signal fails the agent retries and
    // the command is still pending.
    try {
      await opts.onReport(who.host, { bootId: who.bootId, report, receivedAt: now().toISOString() });
    } catch (err) {
      req.log.error({ host: `${who.host.namespace}/${who.host.name}`, commandId: report.commandId, err: (err as Error).message }, 'report not forwarded');
      return reply.code(503).send({ error: `could not hand report of command ${report.commandId} to the host workflow; retry` });
    }
    if (isFinal(report)) commands.finish(who.host, who.bootId, report.commandId);
    return reply.code(204).send();
  });

  app.get<{ Params: HostParams }>(`${AGENT_API_PREFIX}/hosts/:ns/:name/user-data`, async (req, reply) => {
    const who = authorize(req, reply);
    if (!who) return reply;
    const data = userData(who.host, who.bootId);
    if (!data) return reply.code(404).send({ error: 'no deploy command with user data is pending' });
    return reply.header('cache-control', 'no-store').type('application/octet-stream').send(data);
  });
};

/** The plugin with its options bound, for servers that take `FastifyPluginAsync` without options. */
export function agentApi(opts: AgentApiOptions): FastifyPluginAsync {
  return async (app) => agentApiPlugin(app, opts);
}

/**
 * A lookup over the PXE boot registry (activities/pxe/boot-registry.ts):
 * only a MAC that was prepared to boot the agent gets a token.
 */
export function lookupFromBootRegistry(registry: {
  get(mac: string): { host: HostRef; bootId: string; mode: string } | undefined;
}): AgentApiOptions['lookup'] {
  return (mac) => {
    const e = registry.get(mac);
    return e && e.mode === 'agent' ? { host: e.host, bootId: e.bootId } : undefined;
  };
}
