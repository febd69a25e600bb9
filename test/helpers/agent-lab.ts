/**
 * The real provisioning services on loopback (workers/provisioning.ts: the
 * durable session store, the PXE HTTP server with the agent API, the report
 * relay, TFTP) with the real session activities, and a simulated server's
 * firmware: the lab's way to run the real agent script for one agent session
 * and collect what the plane forwarded.
 *
 * run() does what a host workflow and a PXE-booting machine do together:
 * startAgentSession, then GET /boot/<mac>.ipxe (served once, with the token
 * on its kernel line), then the agent runs with exactly that kernel command
 * line in its /proc/cmdline. The agent idles after its one command; run()
 * stops it once the plane has accepted the final report.
 *
 * Signals go to an in-memory list (not Temporal); Warning Events to another;
 * user data Secrets are an in-memory map (`userDataSecrets`, keyed ns/name).
 */
import { mkdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import type { AgentCommand, AgentReport, AgentReportSignal, ExpectedDisk } from '../../api/agent';
import type { HostRef } from '../../api/host';
import type { LabServer } from '../../api/lab';
import { AGENT_CMDLINE, PXE_PATHS } from '../../api/pxe';
import { createSessionActivities, type SessionActivities } from '../../activities/agent/session-activities';
import type { SessionStore } from '../../activities/agent/session-store';
import { runAgent, type AgentExit } from '../../lab/sim/run-agent';
import { createSysroot, type Sysroot } from '../../lab/sim/sysroot';
import { startProvisioning, type ProvisioningOptions, type ProvisioningServices } from '../../workers/provisioning';

export interface AgentLab {
  plane: ProvisioningServices;
  sessions: SessionStore;
  activities: SessionActivities;
  /** Base URL of the provisioning HTTP server (PXE + agent API). */
  apiUrl: string;
  /** Files served under /files/ (images put here are "local" to the plane). */
  filesDir: string;
  /** Every signal the plane forwarded, in order. */
  signals: { host: HostRef; signal: AgentReportSignal }[];
  /** Every Warning Event the plane wrote. */
  warnings: { host: HostRef; reason: string; message: string }[];
  /** User data Secrets by "namespace/name". */
  userDataSecrets: Map<string, Buffer>;
  /** The firmware's part: fetch the per-MAC script; returns its kernel command line (token included) or the HTTP status. */
  fetchBootScript(mac: string): Promise<{ status: number; cmdline?: string; body: string }>;
  run(args: {
    host: HostRef;
    server: LabServer;
    dir: string;
    command: AgentCommand;
    /** User data bytes: stored as Secret <ns>/ud-<name> and named in the session. */
    userData?: Buffer;
    inspectedDisks?: ExpectedDisk[];
    keepDisks?: boolean;
    timeoutMs?: number;
    onLog?: (line: string) => void;
    /** Called once the agent runs (e.g. to kill the plane under it). */
    onAgentStarted?: () => void;
    /** Stop the agent once the final report was accepted (default); false leaves it idling until it exits. */
    stopAfterFinal?: boolean;
  }): Promise<{ exit: AgentExit; sysroot: Sysroot; bootId: string; reports: AgentReport[]; final?: AgentReport }>;
  close(): Promise<void>;
}

const key = (h: HostRef) => `${h.namespace}/${h.name}`;

/** The kernel line's arguments, as iPXE hands them to the kernel (and Linux shows in /proc/cmdline). */
export function kernelCmdline(script: string): string | undefined {
  return /^kernel\s+\S+\s+(.*?)(\s+\|\|.*)?$/m.exec(script)?.[1];
}

export async function startAgentLab(opts: { dir: string; pollIntervalSeconds?: number; tuning?: ProvisioningOptions['tuning']; stateDir?: string; httpPort?: number } ): Promise<AgentLab> {
  const signals: AgentLab['signals'] = [];
  const warnings: AgentLab['warnings'] = [];
  const userDataSecrets = new Map<string, Buffer>();
  const filesDir = join(opts.dir, 'files');
  mkdirSync(filesDir, { recursive: true });
  const readUserData = async (ns: string, name: string) => {
    const b = userDataSecrets.get(`${ns}/${name}`);
    if (!b) throw new Error(`user data Secret ${ns}/${name} does not exist`);
    return b;
  };
  const plane = await startProvisioning({
    stateDir: opts.stateDir ?? join(opts.dir, 'state'),
    filesDir,
    bindHost: '127.0.0.1',
    httpPort: opts.httpPort ?? 0,
    tftpPort: 0,
    log: pino({ level: 'silent' }),
    userData: readUserData,
    pollIntervalSeconds: opts.pollIntervalSeconds ?? 0.2,
    tuning: {
      forward: async (host, signal) => {
        signals.push({ host, signal });
      },
      eventWriter: async (host, reason, message) => {
        warnings.push({ host, reason, message });
      },
      relay: { progressIntervalMs: 0 },
      warningIntervalMs: 0,
      ...opts.tuning,
    },
  });
  const activities = createSessionActivities({ sessions: plane.sessions, images: plane.activityDeps.images, userData: readUserData, log: pino({ level: 'silent' }) });

  const fetchBootScript: AgentLab['fetchBootScript'] = async (mac) => {
    const res = await fetch(plane.httpUrl + PXE_PATHS.macScript(mac));
    const body = await res.text();
    return { status: res.status, body, cmdline: res.ok ? kernelCmdline(body) : undefined };
  };

  return {
    plane, sessions: plane.sessions, activities, apiUrl: plane.httpUrl, filesDir, signals, warnings, userDataSecrets, fetchBootScript,
    async run({ host, server, dir, command, userData, inspectedDisks, keepDisks, timeoutMs, onLog, onAgentStarted, stopAfterFinal = true }) {
      const mac = server.nics[0]!.mac;
      if (userData) userDataSecrets.set(`${host.namespace}/ud-${host.name}`, userData);
      const { bootId } = await activities.startAgentSession({ host, mac, command, ...(userData ? { userData: { name: `ud-${host.name}` } } : {}), inspectedDisks });
      const sysroot = await createSysroot(server, { dir, apiUrl: plane.httpUrl, bootId, keepDisks });
      const script = await fetchBootScript(mac);
      if (!script.cmdline) throw new Error(`no agent script for ${mac} (HTTP ${script.status}): ${script.body}`);
      if (!script.cmdline.includes(`${AGENT_CMDLINE.token}=`)) throw new Error('the agent script carries no token');
      await writeFile(join(sysroot.dir, 'proc/cmdline'), `${script.cmdline}\n`);
      const from = signals.length;
      const mine = () => signals.slice(from).filter((s) => key(s.host) === key(host) && s.signal.bootId === bootId);
      const ac = new AbortController();
      // One command per boot: once the plane has the final report, the agent only idles; stop it as the BMC would.
      // (A poweroff command ends the agent itself.)
      const watch = setInterval(() => {
        if (stopAfterFinal && command.type !== 'poweroff' && mine().some((s) => s.signal.report.status !== 'progress')) ac.abort();
      }, 50);
      onAgentStarted?.();
      let exit: AgentExit;
      try {
        exit = await runAgent({ sysroot: sysroot.dir, timeoutMs, onLog, signal: ac.signal });
      } finally {
        clearInterval(watch);
      }
      await plane.relay.idle();
      const reports = mine().map((s) => s.signal.report);
      return { exit, sysroot, bootId, reports, final: reports.find((r) => r.status !== 'progress') };
    },
    close: () => plane.stop(),
  };
}
