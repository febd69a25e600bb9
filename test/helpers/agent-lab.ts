/**
 * A simulated server and the agent API on loopback, wired together: the
 * lab's way to run the real agent script through a list of commands
 * (e.g. erase, then poweroff) and collect every report it sent. Used by the
 * agent tests and by the lab's simulated servers.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { AddressInfo } from 'node:net';
import type { AgentCommand, AgentReport, AgentReportSignal } from '../../api/agent';
import type { HostRef } from '../../api/host';
import type { LabServer } from '../../api/lab';
import { normalizeMac } from '../../api/pxe';
import { agentApiPlugin } from '../../activities/agent/api';
import { AgentCommandStore } from '../../activities/agent/commands';
import { AgentTokenStore } from '../../activities/agent/tokens';
import { runAgent, type AgentExit } from '../../lab/sim/run-agent';
import { createSysroot, type Sysroot } from '../../lab/sim/sysroot';

export interface AgentLab {
  app: FastifyInstance;
  apiUrl: string;
  tokens: AgentTokenStore;
  commands: AgentCommandStore;
  /** Every report accepted, in order, with its host. */
  reports: { host: HostRef; signal: AgentReportSignal }[];
  /** Registers `server` under `host` with a fresh boot; returns the boot id. */
  addServer(host: HostRef, server: LabServer, bootId: string): void;
  /** Builds the sysroot, queues `script` one command at a time, runs the agent to its exit. */
  run(args: { host: HostRef; server: LabServer; bootId: string; dir: string; script: AgentCommand[]; userData?: Buffer; keepDisks?: boolean; timeoutMs?: number; onLog?: (line: string) => void }): Promise<{ exit: AgentExit; sysroot: Sysroot; reports: AgentReport[] }>;
  close(): Promise<void>;
}

export async function startAgentLab(opts: { pollIntervalSeconds?: number } = {}): Promise<AgentLab> {
  const tokens = new AgentTokenStore();
  const commands = new AgentCommandStore();
  const byMac = new Map<string, { host: HostRef; bootId: string }>();
  const reports: AgentLab['reports'] = [];
  /** Commands still to queue per host (after the current one finishes). */
  const queues = new Map<string, { bootId: string; rest: AgentCommand[] }>();
  const key = (h: HostRef) => `${h.namespace}/${h.name}`;

  const app = Fastify({ logger: false });
  await app.register(agentApiPlugin, {
    tokens,
    commands,
    pollIntervalSeconds: opts.pollIntervalSeconds ?? 0.2,
    lookup: (mac) => byMac.get(mac),
    onReport: async (host, signal) => {
      reports.push({ host, signal });
      const q = queues.get(key(host));
      const r = signal.report;
      if (q && (r.status !== 'progress' || r.type === 'poweroff')) {
        // After the API has finished the current command, queue the next one.
        setImmediate(() => {
          const next = q.rest.shift();
          if (next) commands.set(host, q.bootId, next);
        });
      }
    },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const apiUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  const addServer = (host: HostRef, server: LabServer, bootId: string) => {
    for (const n of server.nics) byMac.set(normalizeMac(n.mac), { host, bootId });
    tokens.prepareBoot(host, bootId);
  };

  return {
    app, apiUrl, tokens, commands, reports, addServer,
    async run({ host, server, bootId, dir, script, userData, keepDisks, timeoutMs, onLog }) {
      addServer(host, server, bootId);
      const sysroot = await createSysroot(server, { dir, apiUrl, bootId, keepDisks });
      const [first, ...rest] = script;
      queues.set(key(host), { bootId, rest });
      if (first) commands.set(host, bootId, first, userData);
      const from = reports.length;
      const exit = await runAgent({ sysroot: sysroot.dir, timeoutMs, onLog });
      return { exit, sysroot, reports: reports.slice(from).filter((r) => key(r.host) === key(host)).map((r) => r.signal.report) };
    },
    close: () => app.close(),
  };
}
