/**
 * Hands agent reports to the host workflows, from the session store.
 *
 * Final reports (and the plane's own 'invalidated' reports) go through the
 * store's durable outbox: the agent API accepts a final report once it is on
 * disk, and this relay delivers it, retrying with backoff (1 s doubling to
 * 30 s) while Temporal is away, including after a plane restart. A report is
 * never dropped (only forgetHostBoot drops the reports of a host whose object
 * is gone) and never changes: a redelivery after a lost acknowledgement is
 * the same signal, byte for byte, with the same commandId.
 *
 * Progress reports are coalesced: the store keeps the latest per session,
 * and this relay sends at most one progress signal per session every
 * `progressIntervalMs` (default 10 s), and at most `progressCap` (default
 * 360, an hour at that rate) per session; past the cap the workflow can still
 * read the latest progress with getAgentSession. A flood of 10,000 reports in
 * 10 s therefore makes at most 2 signals. Progress is best effort: a failed
 * progress signal is not retried.
 */
import type { AgentReportSignal } from '../../api/agent';
import type { HostRef } from '../../api/host';
import { hostKey } from './session-state';
import type { SessionStore } from './session-store';

export interface RelayLog {
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
}

export interface ReportRelayOptions {
  sessions: SessionStore;
  /** Production: the agentReport signal (./forward.ts). Throws when Temporal cannot take it. */
  forward: (host: HostRef, signal: AgentReportSignal) => Promise<void>;
  log: RelayLog;
  progressIntervalMs?: number;
  progressCap?: number;
  retryFirstMs?: number;
  retryMaxMs?: number;
}

export interface ReportRelay {
  /** Delivers what the outbox holds, now (and keeps retrying what fails). */
  kick(): void;
  /** A progress report of this session was recorded: schedule its coalesced signal. */
  progress(host: HostRef, bootId: string): void;
  /** The session ended (its final report is in the outbox): a progress signal still scheduled is dropped. */
  ended(host: HostRef, bootId: string): void;
  /** Resolves when nothing is being delivered and no progress signal is scheduled (tests). */
  idle(): Promise<void>;
  /** Stops timers; the outbox stays on disk for the next start. */
  stop(): Promise<void>;
}

export const RELAY_DEFAULTS = { progressIntervalMs: 10_000, progressCap: 360, retryFirstMs: 1_000, retryMaxMs: 30_000 } as const;

export function startReportRelay(o: ReportRelayOptions): ReportRelay {
  const interval = o.progressIntervalMs ?? RELAY_DEFAULTS.progressIntervalMs;
  const cap = o.progressCap ?? RELAY_DEFAULTS.progressCap;
  const retryFirst = o.retryFirstMs ?? RELAY_DEFAULTS.retryFirstMs;
  const retryMax = o.retryMaxMs ?? RELAY_DEFAULTS.retryMaxMs;
  let stopped = false;

  // ---- outbox ----
  let draining: Promise<void> | undefined;
  let again = false;
  let retryTimer: NodeJS.Timeout | undefined;
  let failures = 0;

  async function drain(): Promise<void> {
    let failed = false;
    for (const d of o.sessions.pendingDeliveries()) {
      if (stopped) return;
      const base = { host: hostKey(d.host), bootId: d.bootId, commandId: d.signal.report.commandId, status: d.signal.report.status, attempt: d.attempts + 1 };
      try {
        await o.forward(d.host, d.signal);
      } catch (err) {
        failed = true;
        const message = (err as Error).message ?? String(err);
        await o.sessions.noteDelivery(d.host, d.bootId, message);
        // Loud on the first failure and every 10th after it; the report waits in the outbox either way.
        if (d.attempts % 10 === 0) o.log.warn({ ...base, err: message }, 'agent report not delivered to the host workflow yet; kept in the outbox, retrying');
        continue;
      }
      await o.sessions.noteDelivery(d.host, d.bootId).catch((err: Error) => o.log.warn({ ...base, err: err.message }, 'agent report delivered, but recording that failed (it may be delivered again, unchanged)'));
      if (d.attempts > 0) o.log.info(base, 'agent report delivered from the outbox');
    }
    if (failed) {
      failures++;
      const delay = Math.min(retryMax, retryFirst * 2 ** Math.min(failures - 1, 16));
      if (!stopped && !retryTimer) retryTimer = setTimeout(() => { retryTimer = undefined; kick(); }, delay);
    } else {
      failures = 0;
    }
  }

  function kick(): void {
    if (stopped) return;
    if (draining) {
      again = true;
      return;
    }
    draining = (async () => {
      do {
        again = false;
        await drain().catch((err: Error) => o.log.warn({ err: err.message }, 'agent report relay failed; retrying'));
      } while (again && !stopped);
    })().finally(() => {
      draining = undefined;
    });
  }

  // ---- progress ----
  const timers = new Map<string, NodeJS.Timeout>();
  const inFlight = new Map<string, Promise<void>>();
  /** Progress that arrived while a signal of its session was in flight: scheduled when that one is done. */
  const dirty = new Set<string>();

  function progress(host: HostRef, bootId: string): void {
    const key = `${hostKey(host)}#${bootId}`;
    if (stopped || timers.has(key)) return; // the scheduled signal will carry the latest progress
    if (inFlight.has(key)) {
      dirty.add(key);
      return;
    }
    const s = o.sessions.currentSession(host);
    if (!s || s.bootId !== bootId || s.progressSignals >= cap) return;
    const last = s.lastProgressSignalAt ? Date.parse(s.lastProgressSignalAt) : 0;
    const wait = Math.max(0, last + interval - Date.now());
    timers.set(key, setTimeout(() => {
      timers.delete(key);
      const now = o.sessions.currentSession(host);
      if (!now || now.bootId !== bootId || !now.progress || (now.state !== 'running' && now.state !== 'booting')) return;
      const signal: AgentReportSignal = {
        bootId,
        report: { commandId: now.command.id, type: now.command.type, status: 'progress', message: now.progress.message, ...(now.progress.percent !== undefined ? { percent: now.progress.percent } : {}) },
        receivedAt: now.progress.at,
      };
      o.sessions.noteProgressSignal(host, bootId);
      const p = o.forward(host, signal)
        .catch(() => undefined) // best effort: the next progress (or getAgentSession) tells the workflow
        .finally(() => {
          inFlight.delete(key);
          if (dirty.delete(key)) progress(host, bootId);
        });
      inFlight.set(key, p);
    }, wait));
  }

  function ended(host: HostRef, bootId: string): void {
    const key = `${hostKey(host)}#${bootId}`;
    const t = timers.get(key);
    if (t) clearTimeout(t);
    timers.delete(key);
    dirty.delete(key);
  }

  return {
    kick,
    progress,
    ended,
    async idle() {
      while (draining || timers.size || inFlight.size) {
        await Promise.all([draining, ...inFlight.values()]);
        if (timers.size) await new Promise((r) => setTimeout(r, 10));
      }
    },
    async stop() {
      stopped = true;
      if (retryTimer) clearTimeout(retryTimer);
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
      await draining;
      await Promise.all(inFlight.values());
    },
  };
}
