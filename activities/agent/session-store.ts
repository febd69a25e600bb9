/**
 * The plane's ONE durable record of the provisioning network (issue 12: "one
 * source says which boot is current"): per host its current boot and agent
 * session, which host holds which boot MAC, and the unknown MACs seen. The
 * activities (prepareBoot, startAgentSession, ...), the PXE HTTP server and
 * the agent API all read and change this one object, in one process; it is
 * persisted (./state-file.ts, layout in ./session-state.ts) so a plane killed
 * with -9 comes back knowing every boot and session in flight.
 *
 * Durability rule: a change someone else acts on is on disk before the call
 * that made it returns (a session started, a token minted before its script
 * leaves, a final report accepted before the agent gets 204). Progress and
 * discovery sightings are written lazily (coalesced): losing the last few on
 * a crash costs nothing.
 *
 * Tokens: minted when the per-boot iPXE script is served (once), 32 random
 * bytes, base64url; only their SHA-256 is kept. A token works for exactly one
 * host, one boot and one command.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { AgentCommand, AgentReport, AgentReportSignal, AgentSessionView, ExpectedDisk } from '../../api/agent';
import type { HostRef } from '../../api/host';
import { normalizeMac, type BootMode } from '../../api/pxe';
import { DEFAULT_DISCOVERY_LIMITS, DiscoveryBook, type DiscoveryLimits, type DiscoveryOutcome } from './discovery-book';
import {
  type BootRecord, checkLoadedState, type DiscoveredMac, type DiscoverySource, emptyState, type ExpectedEvidence, hostKey, type HostRecord,
  isLive, sameHost, type SessionRecord, sessionView, type StoreState,
} from './session-state';
import { JsonStateFile } from './state-file';

export interface SessionStoreOptions {
  /** The JSON file; absent = memory only (unit tests). */
  file?: string;
  /** A version-1 boot-registry.json of an older plane: its disk/none boots and discovery records are imported once, then it is removed. */
  legacyRegistryFile?: string;
  discovery?: Partial<DiscoveryLimits>;
  /** Ended sessions kept per host (default 8). */
  pastSessionsKept?: number;
  now?: () => Date;
  newBootId?: () => string;
  newToken?: () => string;
  /** Lazy writes that failed (the next write retries with newer state). */
  onWriteError?: (err: Error) => void;
}

/** Why the store refused a change; `code` maps to a failure type in the activities. */
export class BootRefused extends Error {
  override name = 'BootRefused';
  constructor(
    readonly code: 'mac-conflict' | 'no-boot' | 'session-busy',
    message: string,
  ) {
    super(message);
  }
}

export type ScriptDecision =
  | { kind: 'unknown' }
  /** Serve this boot; `token` only for an agent boot served for the first time. */
  | { kind: 'serve'; host: HostRef; boot: BootRecord; token?: string }
  /** Serve nothing (an 'exit' script). `invalidated` is set when this fetch ended the session. */
  | { kind: 'refuse'; host: HostRef; boot: BootRecord; why: string; invalidated?: AgentReportSignal };

export type TokenVerdict =
  | { ok: true; host: HostRef; session: SessionRecord }
  /** `finished`: the token's session had done its command (its idle agent polling on is expected, not a forgery). */
  | { ok: false; status: 401 | 403; reason: string; owner?: HostRef; finished?: boolean };

export interface StartSessionSpec {
  command: AgentCommand;
  userData?: { namespace: string; name: string };
  inspectedDisks?: ExpectedDisk[];
  expected: ExpectedEvidence;
  kernelArgs?: string[];
}

const sha256hex = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

export class SessionStore {
  private readonly file: JsonStateFile | undefined;
  private readonly now: () => Date;
  private readonly newBootId: () => string;
  private readonly newToken: () => string;
  private readonly pastKept: number;
  /** mac -> host key of the boot on that MAC (derived from state). */
  private readonly bootByMac = new Map<string, string>();
  /** token sha256 -> whose it is (current and past sessions). */
  private readonly byToken = new Map<string, { key: string; bootId: string }>();
  readonly discovery: DiscoveryBook;

  private constructor(
    private state: StoreState,
    opts: SessionStoreOptions,
  ) {
    this.now = opts.now ?? (() => new Date());
    this.newBootId = opts.newBootId ?? randomUUID;
    this.newToken = opts.newToken ?? (() => randomBytes(32).toString('base64url'));
    this.pastKept = opts.pastSessionsKept ?? 8;
    this.file = opts.file ? new JsonStateFile(opts.file, () => JSON.stringify(this.state) + '\n', opts.onWriteError) : undefined;
    this.discovery = new DiscoveryBook(() => this.state, { ...DEFAULT_DISCOVERY_LIMITS, ...opts.discovery }, this.now);
    this.reindex();
  }

  /** Loads the file if it exists (a missing file is an empty store), importing a legacy boot registry once. */
  static async open(opts: SessionStoreOptions = {}): Promise<SessionStore> {
    const loaded = opts.file ? await JsonStateFile.read(opts.file) : undefined;
    if (loaded !== undefined) return new SessionStore(checkLoadedState(loaded, opts.file!), opts);
    const store = new SessionStore(emptyState(), opts);
    if (opts.legacyRegistryFile) await store.importLegacy(opts.legacyRegistryFile);
    return store;
  }

  // ---- boots ---------------------------------------------------------------------------------

  /** What `mac` boots next, with its host and session; undefined for a MAC no host boots from. */
  bootForMac(mac: string): { host: HostRef; boot: BootRecord; session?: SessionRecord } | undefined {
    const rec = this.hostByMac(normalizeMac(mac));
    return rec?.boot ? structuredClone({ host: rec.host, boot: rec.boot, session: rec.session }) : undefined;
  }

  /** The host's current boot (undefined = boots nothing through Ironflow). */
  bootOf(host: HostRef): BootRecord | undefined {
    const b = this.state.hosts[hostKey(host)]?.boot;
    return b && structuredClone(b);
  }

  /**
   * Makes the next PXE boot of `mac` boot `mode` (disk, none, or an agent boot
   * whose session sendAgentCommand attaches). The same host+mode+args again
   * returns the same bootId unless `renew`. A new boot ends the current session.
   */
  async prepareBoot(host: HostRef, macIn: string, mode: BootMode, opts: { kernelArgs?: string[]; renew?: boolean } = {}): Promise<{ bootId: string; renewed: boolean }> {
    const mac = normalizeMac(macIn);
    this.checkMacFree(host, mac);
    const rec = this.ensureHost(host);
    const kernelArgs = opts.kernelArgs ?? [];
    const b = rec.boot;
    if (b && b.mac === mac && b.mode === mode && JSON.stringify(b.kernelArgs) === JSON.stringify(kernelArgs) && !opts.renew) {
      return { bootId: b.bootId, renewed: false };
    }
    this.retireSession(rec, mode === 'agent' ? 'a new agent boot was prepared' : `the host was set to boot ${mode === 'disk' ? 'from its disk' : 'nothing'}`);
    this.setBoot(rec, { mac, mode, bootId: this.newBootId(), kernelArgs, preparedAt: this.stamp() });
    this.claimIfFree(host, mac);
    await this.persist();
    return { bootId: rec.boot!.bootId, renewed: Boolean(b) };
  }

  /** Forgets what `mac` boots next (the host keeps its claim). False if there was nothing. */
  async clearBoot(host: HostRef, macIn: string): Promise<boolean> {
    const mac = normalizeMac(macIn);
    const owner = this.hostByMac(mac);
    if (!owner) return false;
    if (!sameHost(owner.host, host)) {
      throw new BootRefused('mac-conflict', `MAC ${mac} boots for another BareMetalHost, not ${hostKey(host)}: not cleared`);
    }
    this.retireSession(owner, 'the host\'s boot was cleared');
    this.setBoot(owner, undefined);
    await this.persist();
    return true;
  }

  // ---- claims --------------------------------------------------------------------------------

  /**
   * `host` holds `mac` until forgetHost (its object is gone). Refused when
   * another host holds it. A host holds one boot MAC: claiming a new one
   * releases its old one (and ends a boot on it).
   */
  async claim(host: HostRef, macIn: string): Promise<void> {
    const mac = normalizeMac(macIn);
    this.checkMacFree(host, mac);
    const rec = this.ensureHost(host);
    for (const [m, c] of Object.entries(this.state.claims)) {
      if (m !== mac && sameHost(c.host, host)) delete this.state.claims[m];
    }
    if (rec.boot && rec.boot.mac !== mac) {
      this.retireSession(rec, `the host's boot MAC changed to ${mac}`);
      this.setBoot(rec, undefined);
    }
    if (this.state.claims[mac]) return;
    this.state.claims[mac] = { host: { ...host }, claimedAt: this.stamp() };
    this.discovery.forget(mac);
    await this.persist();
  }

  /** Who holds `mac`, if anyone. */
  claimOf(mac: string): HostRef | undefined {
    const c = this.state.claims[normalizeMac(mac)];
    return c && { ...c.host };
  }

  /** True when `mac` belongs to a host (claimed or booting): never a discovery candidate. */
  isRegisteredMac(mac: string): boolean {
    const m = normalizeMac(mac);
    return Boolean(this.state.claims[m]) || this.bootByMac.has(m);
  }

  /** Every exit path of a host: its boot, sessions (tokens) and claims go. Returns undelivered reports dropped. */
  async forgetHost(host: HostRef): Promise<{ droppedReports: number }> {
    const key = hostKey(host);
    const rec = this.state.hosts[key];
    const droppedReports = rec ? [rec.session, ...rec.past].filter((s) => s?.outbox && !s.outbox.deliveredAt).length : 0;
    let changed = Boolean(rec);
    delete this.state.hosts[key];
    for (const [m, c] of Object.entries(this.state.claims)) {
      if (sameHost(c.host, host)) {
        delete this.state.claims[m];
        changed = true;
      }
    }
    if (changed) {
      this.reindex();
      await this.persist();
    }
    return { droppedReports };
  }

  // ---- sessions ------------------------------------------------------------------------------

  /** The session of `commandId` (current or past), if the store knows it. */
  findSession(host: HostRef, commandId: string): SessionRecord | undefined {
    const rec = this.state.hosts[hostKey(host)];
    if (!rec) return undefined;
    const s = [rec.session, ...rec.past].find((x) => x?.command.id === commandId);
    return s && structuredClone(s);
  }

  /** The session of `commandId`; without one, the host's latest session (its current one, else the last that ended). */
  view(host: HostRef, commandId?: string): AgentSessionView | undefined {
    const rec = this.state.hosts[hostKey(host)];
    const s = commandId !== undefined ? this.findSession(host, commandId) : rec && (rec.session ?? rec.past[rec.past.length - 1]);
    return s && sessionView(structuredClone(s));
  }

  /** The disks of the last inspection this plane accepted for the host. */
  lastInspectedDisks(host: HostRef): ExpectedDisk[] | undefined {
    const d = this.state.hosts[hostKey(host)]?.lastInspectedDisks;
    return d && structuredClone(d);
  }

  /** The live or last session of the host's current boot. */
  currentSession(host: HostRef): SessionRecord | undefined {
    const s = this.state.hosts[hostKey(host)]?.session;
    return s && structuredClone(s);
  }

  /** A fresh agent boot of `mac` for exactly `spec.command`. Idempotent by command id. */
  async startSession(host: HostRef, macIn: string, spec: StartSessionSpec): Promise<{ bootId: string; created: boolean }> {
    const mac = normalizeMac(macIn);
    const known = this.findSession(host, spec.command.id);
    if (known) return { bootId: known.bootId, created: false };
    this.checkMacFree(host, mac);
    const rec = this.ensureHost(host);
    this.retireSession(rec, `superseded by a new session for command ${spec.command.id}`);
    const bootId = this.newBootId();
    this.setBoot(rec, { mac, mode: 'agent', bootId, kernelArgs: spec.kernelArgs ?? [], preparedAt: this.stamp() });
    rec.session = this.newSession(bootId, spec);
    this.claimIfFree(host, mac);
    await this.persist();
    return { bootId, created: true };
  }

  /** Transitional: the session for a boot prepared with prepareBoot(mode 'agent'). Same id again = no change. */
  async attachSession(host: HostRef, bootId: string, spec: StartSessionSpec): Promise<'accepted' | 'duplicate'> {
    const rec = this.state.hosts[hostKey(host)];
    if (rec?.session?.command.id === spec.command.id || rec?.past.some((s) => s.command.id === spec.command.id)) return 'duplicate';
    if (!rec?.boot || rec.boot.bootId !== bootId || rec.boot.mode !== 'agent') {
      throw new BootRefused('no-boot', `boot ${bootId} is not the current agent boot of ${hostKey(host)}: prepare a new boot (mode agent) first`);
    }
    if (rec.session) {
      throw new BootRefused('session-busy', `boot ${bootId} of ${hostKey(host)} already runs command ${rec.session.command.id}; a boot carries one command`);
    }
    rec.session = this.newSession(bootId, spec);
    await this.persist();
    return 'accepted';
  }

  /**
   * The firmware asks for `mac`'s script. An agent boot's script is served
   * ONCE: the first fetch mints the token (persisted before the script
   * leaves); a second fetch ends the session, since its token may now be in
   * other hands.
   */
  async serveScript(macIn: string): Promise<ScriptDecision> {
    const rec = this.hostByMac(normalizeMac(macIn));
    if (!rec?.boot) return { kind: 'unknown' };
    const boot = rec.boot;
    boot.lastServedAt = this.stamp();
    const out = (d: ScriptDecision): ScriptDecision => structuredClone(d);
    if (boot.mode !== 'agent') {
      this.file?.persistSoon();
      return out({ kind: 'serve', host: rec.host, boot });
    }
    const s = rec.session;
    if (!s) {
      this.file?.persistSoon();
      return out({ kind: 'refuse', host: rec.host, boot, why: 'the agent boot has no command yet' });
    }
    if (s.state === 'prepared') {
      const token = this.newToken();
      s.tokenSha256 = sha256hex(token);
      s.state = 'booting';
      s.servedAt = boot.lastServedAt;
      this.byToken.set(s.tokenSha256, { key: hostKey(rec.host), bootId: s.bootId });
      try {
        await this.persist();
      } catch (err) {
        // Not on disk: the script must not leave (a restarted plane would not know its token). Back to prepared.
        this.byToken.delete(s.tokenSha256);
        delete s.tokenSha256;
        delete s.servedAt;
        s.state = 'prepared';
        throw err;
      }
      return { kind: 'serve', host: structuredClone(rec.host), boot: structuredClone(boot), token };
    }
    if (s.state === 'booting' || s.state === 'running') {
      const why = `the boot script of boot ${s.bootId} was fetched a second time (first at ${s.servedAt}): its token may be in other hands, so the boot was ended`;
      const invalidated = await this.invalidate(rec.host, s.bootId, why);
      return out({ kind: 'refuse', host: rec.host, boot, why, invalidated });
    }
    this.file?.persistSoon();
    return out({ kind: 'refuse', host: rec.host, boot, why: `boot ${s.bootId} has ended (${s.state})` });
  }

  /** Checks an agent token. Never logs or returns it. */
  authenticate(token: string | undefined): TokenVerdict {
    if (!token) return { ok: false, status: 401, reason: 'no agent token (header x-ironflow-agent-token; the agent reads it from ironflow.token on its kernel command line)' };
    if (token.length > 128) return { ok: false, status: 401, reason: 'unknown agent token' };
    const hash = sha256hex(token);
    const ref = this.byToken.get(hash);
    if (!ref) return { ok: false, status: 401, reason: 'unknown agent token' };
    const rec = this.state.hosts[ref.key];
    if (!rec) return { ok: false, status: 401, reason: 'unknown agent token' };
    const s = rec.session;
    if (s && s.bootId === ref.bootId && s.tokenSha256 === hash) {
      if (s.state === 'invalidated') return { ok: false, status: 403, reason: `boot ${s.bootId} of ${ref.key} was ended by the plane`, owner: rec.host };
      return { ok: true, host: structuredClone(rec.host), session: structuredClone(s) };
    }
    const ended = [...rec.past, s].find((x) => x?.bootId === ref.bootId);
    return { ok: false, status: 403, reason: `the token belongs to boot ${ref.bootId}, which is no longer the current boot of ${ref.key}`, owner: rec.host, finished: ended?.state === 'finished' };
  }

  /** The agent called in with its token: booting -> running. */
  markRunning(host: HostRef, bootId: string): void {
    const s = this.liveSession(host, bootId);
    if (s?.state !== 'booting') return;
    s.state = 'running';
    s.runningAt = this.stamp();
    this.file?.persistSoon();
  }

  /** Keeps the latest progress of a live session (written lazily). */
  recordProgress(host: HostRef, bootId: string, p: { message: string; percent?: number }): SessionRecord | undefined {
    const s = this.liveSession(host, bootId);
    if (!s) return undefined;
    s.progress = { message: p.message, ...(p.percent !== undefined ? { percent: p.percent } : {}), at: this.stamp() };
    this.file?.persistSoon();
    return structuredClone(s);
  }

  /** A progress signal went out for this session. */
  noteProgressSignal(host: HostRef, bootId: string): void {
    const s = this.liveSession(host, bootId);
    if (!s) return;
    s.progressSignals++;
    s.lastProgressSignalAt = this.stamp();
    this.file?.persistSoon();
  }

  /** A final report refused for its evidence; returns how many so far. */
  noteEvidenceMismatch(host: HostRef, bootId: string): number {
    const s = this.liveSession(host, bootId);
    if (!s) return 0;
    s.evidenceMismatches++;
    this.file?.persistSoon();
    return s.evidenceMismatches;
  }

  /** Accepts the final report of a live session: finished, with the signal in the outbox. On disk when this resolves. */
  async finish(host: HostRef, bootId: string, report: AgentReport): Promise<AgentReportSignal> {
    const s = this.liveSession(host, bootId);
    if (!s) throw new BootRefused('no-boot', `boot ${bootId} of ${hostKey(host)} has no live session`);
    const receivedAt = this.stamp();
    s.state = 'finished';
    s.endedAt = receivedAt;
    s.report = report;
    s.outbox = { signal: { bootId, report, receivedAt }, attempts: 0 };
    if (report.type === 'inspect' && report.status === 'ok') {
      const rec = this.state.hosts[hostKey(host)]!;
      rec.lastInspectedDisks = report.data.disks.map((d) => ({ name: d.name, serialNumber: d.serialNumber, sizeBytes: d.sizeBytes }));
    }
    await this.persist();
    return structuredClone(s.outbox.signal);
  }

  /** The plane ends a live session: token dead, a failed report with `invalidated: true` in the outbox. */
  async invalidate(host: HostRef, bootId: string, reason: string): Promise<AgentReportSignal | undefined> {
    const s = this.liveSession(host, bootId);
    if (!s) return undefined;
    const at = this.stamp();
    s.state = 'invalidated';
    s.endedAt = at;
    s.invalidatedReason = reason;
    s.report = { commandId: s.command.id, type: s.command.type, status: 'failed', message: reason };
    s.outbox = { signal: { bootId, report: s.report, receivedAt: at, invalidated: true }, attempts: 0 };
    await this.persist();
    return structuredClone(s.outbox.signal);
  }

  /** Reports the workflow has not taken yet, oldest first. */
  pendingDeliveries(): Array<{ host: HostRef; bootId: string; signal: AgentReportSignal; attempts: number }> {
    const out: Array<{ host: HostRef; bootId: string; signal: AgentReportSignal; attempts: number }> = [];
    for (const rec of Object.values(this.state.hosts)) {
      for (const s of [...rec.past, rec.session]) {
        if (s?.outbox && !s.outbox.deliveredAt) out.push(structuredClone({ host: rec.host, bootId: s.bootId, signal: s.outbox.signal, attempts: s.outbox.attempts }));
      }
    }
    return out.sort((a, b) => a.signal.receivedAt.localeCompare(b.signal.receivedAt));
  }

  /** Temporal took the report (or refused it for `error`, to be retried). */
  async noteDelivery(host: HostRef, bootId: string, error?: string): Promise<void> {
    const rec = this.state.hosts[hostKey(host)];
    const s = rec && [rec.session, ...rec.past].find((x) => x?.bootId === bootId && x.outbox);
    if (!s?.outbox) return;
    s.outbox.attempts++;
    if (error === undefined) {
      s.outbox.deliveredAt = this.stamp();
      delete s.outbox.lastError;
      await this.persist();
    } else {
      s.outbox.lastError = error.slice(0, 512);
      this.file?.persistSoon();
    }
  }

  // ---- discovery ------------------------------------------------------------------------------

  recordUnknown(seen: { mac: string; sourceIp?: string; source: DiscoverySource }): { outcome: DiscoveryOutcome; record?: DiscoveredMac } {
    const r = this.discovery.record(seen, (m) => this.isRegisteredMac(m));
    if (r.outcome !== 'registered') this.file?.persistSoon();
    return r;
  }

  discovered(): DiscoveredMac[] {
    return this.discovery.list();
  }

  // ---- whole store ----------------------------------------------------------------------------

  /** A copy of the whole state (JSON-plain), e.g. for tests that prove a forgery changed nothing. */
  snapshot(): StoreState {
    return structuredClone(this.state);
  }

  /** Resolves when every change so far is on disk. */
  flush(): Promise<void> {
    return this.file?.flush() ?? Promise.resolve();
  }

  // ---- internals ------------------------------------------------------------------------------

  private stamp(): string {
    return this.now().toISOString();
  }

  private persist(): Promise<void> {
    return this.file?.persist() ?? Promise.resolve();
  }

  private ensureHost(host: HostRef): HostRecord {
    const key = hostKey(host);
    this.state.hosts[key] ??= { host: { namespace: host.namespace, name: host.name }, past: [] };
    return this.state.hosts[key];
  }

  private hostByMac(mac: string): HostRecord | undefined {
    const key = this.bootByMac.get(mac);
    return key ? this.state.hosts[key] : undefined;
  }

  private liveSession(host: HostRef, bootId: string): SessionRecord | undefined {
    const s = this.state.hosts[hostKey(host)]?.session;
    return s && s.bootId === bootId && isLive(s) ? s : undefined;
  }

  private newSession(bootId: string, spec: StartSessionSpec): SessionRecord {
    return {
      bootId,
      command: structuredClone(spec.command),
      state: 'prepared',
      preparedAt: this.stamp(),
      ...(spec.userData ? { userData: { ...spec.userData } } : {}),
      ...(spec.inspectedDisks ? { inspectedDisks: structuredClone(spec.inspectedDisks) } : {}),
      expected: structuredClone(spec.expected),
      progressSignals: 0,
      evidenceMismatches: 0,
    };
  }

  /** Refuses a MAC that another host holds or boots from. Messages never name a host of another namespace. */
  private checkMacFree(host: HostRef, mac: string): void {
    const claim = this.state.claims[mac];
    const booting = this.hostByMac(mac);
    const holder = claim && !sameHost(claim.host, host) ? claim.host : booting && !sameHost(booting.host, host) ? booting.host : undefined;
    if (!holder) return;
    if (holder.namespace !== host.namespace) {
      throw new BootRefused('mac-conflict', `MAC ${mac} is held by a BareMetalHost in another namespace, so ${hostKey(host)} cannot boot from it (claims never cross namespaces): fix spec.bootMACAddress`);
    }
    throw new BootRefused('mac-conflict', `MAC ${mac} is held by BareMetalHost ${hostKey(holder)} until that object is deleted, so ${hostKey(host)} cannot boot from it: fix spec.bootMACAddress of one of them`);
  }

  private claimIfFree(host: HostRef, mac: string): void {
    if (this.state.claims[mac]) return;
    for (const [m, c] of Object.entries(this.state.claims)) if (sameHost(c.host, host)) delete this.state.claims[m];
    this.state.claims[mac] = { host: { ...host }, claimedAt: this.stamp() };
    this.discovery.forget(mac);
  }

  private setBoot(rec: HostRecord, boot: BootRecord | undefined): void {
    if (rec.boot) this.bootByMac.delete(rec.boot.mac);
    rec.boot = boot;
    if (boot) {
      this.bootByMac.set(boot.mac, hostKey(rec.host));
      this.discovery.forget(boot.mac);
    }
  }

  /** Moves the current session to the past; a live one ends ('superseded', no signal: the workflow asked for it). */
  private retireSession(rec: HostRecord, why: string): void {
    const s = rec.session;
    if (!s) return;
    if (isLive(s)) {
      s.state = 'invalidated';
      s.endedAt = this.stamp();
      s.invalidatedReason = `superseded: ${why}`;
    }
    rec.past.push(s);
    rec.session = undefined;
    // Bounded; a report not yet delivered is kept past the bound (it is dropped only by forgetHost).
    while (rec.past.length > this.pastKept) {
      const i = rec.past.findIndex((p) => !p.outbox || p.outbox.deliveredAt);
      if (i < 0) break;
      const [gone] = rec.past.splice(i, 1);
      if (gone?.tokenSha256) this.byToken.delete(gone.tokenSha256);
    }
  }

  private reindex(): void {
    this.bootByMac.clear();
    this.byToken.clear();
    for (const [key, rec] of Object.entries(this.state.hosts)) {
      if (rec.boot) this.bootByMac.set(rec.boot.mac, key);
      for (const s of [...rec.past, rec.session]) if (s?.tokenSha256) this.byToken.set(s.tokenSha256, { key, bootId: s.bootId });
    }
  }

  private async importLegacy(file: string): Promise<void> {
    const legacy = (await JsonStateFile.read(file)) as
      | { version?: number; entries?: Record<string, { mac: string; host: HostRef; mode: BootMode; bootId: string; kernelArgs?: string[]; preparedAt: string }>; discovered?: Record<string, DiscoveredMac> }
      | undefined;
    if (legacy?.version !== 1) return;
    for (const e of Object.values(legacy.entries ?? {})) {
      // An agent boot of the old plane had its token in memory only: nothing to resume; the workflow's deadline retries it.
      if (e.mode === 'agent' || this.isRegisteredMac(e.mac)) continue;
      const rec = this.ensureHost(e.host);
      this.setBoot(rec, { mac: normalizeMac(e.mac), mode: e.mode, bootId: e.bootId, kernelArgs: e.kernelArgs ?? [], preparedAt: e.preparedAt });
      this.claimIfFree(e.host, normalizeMac(e.mac));
    }
    const room = this.discovery.limits.maxRecords;
    for (const d of Object.values(legacy.discovered ?? {}).slice(0, room)) if (!this.isRegisteredMac(d.mac)) this.state.discovered[d.mac] = d;
    await this.persist();
    if (this.file) await fs.rm(file, { force: true });
  }
}
