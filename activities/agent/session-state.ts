/**
 * The shape of the plane's durable session store (./session-store.ts): what
 * each host boots next, its agent session, MAC claims and discovery records,
 * all JSON-plain so the file is the state as is.
 *
 * File: `<stateDir>/pxe/sessions.json` (npm start: `.ironflow/pxe/sessions.json`),
 * mode 0600, replaced atomically (write to a temporary file, fsync, rename).
 *
 *   {
 *     "format": "ironflow-boot-sessions", "version": 1,
 *     "hosts":   { "<ns>/<name>": HostRecord },      current boot + session, past sessions
 *     "claims":  { "<mac>": MacClaim },              which host holds a boot MAC
 *     "discovered": { "<mac>": DiscoveredMac },      unknown MACs seen (capped)
 *     "discoveryDropped": { "cap": n, "rate": n }    unknown MACs not stored, counted
 *   }
 *
 * What is NOT in it: plaintext tokens (only their SHA-256), user data (only
 * the Secret's namespace/name; the bytes are read from the Secret when the
 * agent fetches them).
 */
import type {
  AgentCommand, AgentReport, AgentReportSignal, AgentSessionState, AgentSessionView, ExpectedDisk,
} from '../../api/agent';
import type { HostRef } from '../../api/host';
import type { BootMode } from '../../api/pxe';

export const STORE_FORMAT = 'ironflow-boot-sessions';
export const STORE_VERSION = 1;

/** What the host's boot MAC boots next. One per host: "one source says which boot is current". */
export interface BootRecord {
  /** Normalised: lower case, ':' separated. */
  mac: string;
  mode: BootMode;
  bootId: string;
  /** Extra kernel arguments for mode 'agent' (checked by ipxe-script.ts when rendered). */
  kernelArgs: string[];
  preparedAt: string;
  /** Last time the per-MAC script was served. */
  lastServedAt?: string;
}

/** What the plane computed when it started the session, to check the agent's evidence against. */
export interface ExpectedEvidence {
  /** deploy: sha256 over the image's bytes at command.verify.regions. */
  imageSampleSha256?: string;
  /** deploy: the image's size when the plane could learn it (bytesWritten must equal it). */
  imageBytes?: number;
  /** erase: per inspected disk name, sha256 of the zeros its verify regions must read back. */
  zeroSampleSha256?: Record<string, string>;
}

/** A report for the workflow that Temporal has not taken yet (the durable outbox). */
export interface OutboxEntry {
  signal: AgentReportSignal;
  attempts: number;
  lastError?: string;
  deliveredAt?: string;
}

export interface SessionRecord {
  bootId: string;
  /** Exactly what the agent receives (verify regions and disks included). */
  command: AgentCommand;
  state: AgentSessionState;
  preparedAt: string;
  servedAt?: string;
  runningAt?: string;
  endedAt?: string;
  /** Hex SHA-256 of the token; absent until the boot script was served (the token is minted then). */
  tokenSha256?: string;
  /** The user data Secret, by reference only (always the host's own namespace). */
  userData?: { namespace: string; name: string };
  inspectedDisks?: ExpectedDisk[];
  expected: ExpectedEvidence;
  /** The accepted final report (finished), or the plane's failed report (invalidated). */
  report?: AgentReport;
  invalidatedReason?: string;
  /** Latest progress (coalesced: many reports, one record). */
  progress?: { message: string; percent?: number; at: string };
  /** Progress signals sent to the workflow so far (capped). */
  progressSignals: number;
  lastProgressSignalAt?: string;
  /** Final reports refused for evidence that did not match. */
  evidenceMismatches: number;
  outbox?: OutboxEntry;
}

export interface HostRecord {
  host: HostRef;
  boot?: BootRecord;
  /** The session of the current boot (absent for disk/none boots). */
  session?: SessionRecord;
  /** Ended sessions, newest last (bounded), so getAgentSession answers for them and their tokens get 403, not 401. */
  past: SessionRecord[];
  /** The disks of the last inspection this plane accepted: what an erase must prove, when the caller names none. */
  lastInspectedDisks?: ExpectedDisk[];
}

export interface MacClaim {
  host: HostRef;
  claimedAt: string;
}

export type DiscoverySource = 'http' | 'dhcp' | 'tftp';

export interface DiscoveredMac {
  mac: string;
  firstSeen: string;
  lastSeen: string;
  /** Last known address of the machine (absent until a packet carried one, e.g. a DHCPDISCOVER has none). */
  sourceIp?: string;
  source: DiscoverySource;
  count: number;
}

export interface StoreState {
  format: typeof STORE_FORMAT;
  version: typeof STORE_VERSION;
  hosts: Record<string, HostRecord>;
  claims: Record<string, MacClaim>;
  discovered: Record<string, DiscoveredMac>;
  discoveryDropped: { cap: number; rate: number };
}

export const emptyState = (): StoreState => ({
  format: STORE_FORMAT, version: STORE_VERSION, hosts: {}, claims: {}, discovered: {}, discoveryDropped: { cap: 0, rate: 0 },
});

export const hostKey = (h: HostRef) => `${h.namespace}/${h.name}`;
export const sameHost = (a: HostRef, b: HostRef) => a.namespace === b.namespace && a.name === b.name;

/** States in which a session still waits for its agent. */
export const LIVE_STATES: readonly AgentSessionState[] = ['prepared', 'booting', 'running'];
export const isLive = (s: SessionRecord) => LIVE_STATES.includes(s.state);

/** What a workflow may see of a session: never the token hash, user data reference or expected hashes. */
export function sessionView(s: SessionRecord): AgentSessionView {
  return {
    bootId: s.bootId,
    commandId: s.command.id,
    type: s.command.type,
    state: s.state,
    command: s.command,
    preparedAt: s.preparedAt,
    ...(s.report ? { report: s.report } : {}),
    ...(s.invalidatedReason ? { invalidatedReason: s.invalidatedReason } : {}),
    ...(s.progress ? { progress: s.progress } : {}),
  };
}

/** Loose structural check of a loaded file; a wrong file is refused rather than half-used. */
export function checkLoadedState(parsed: unknown, file: string): StoreState {
  const s = parsed as Partial<StoreState> | undefined;
  if (s?.format !== STORE_FORMAT || s.version !== STORE_VERSION) {
    throw new Error(`session store file ${file} is not a version ${STORE_VERSION} ${STORE_FORMAT} file: fix or remove it (the plane then forgets every agent session in flight)`);
  }
  for (const field of ['hosts', 'claims', 'discovered'] as const) {
    if (typeof s[field] !== 'object' || s[field] === null) throw new Error(`session store file ${file}: "${field}" is not an object: fix or remove it`);
  }
  return { ...emptyState(), ...s, discoveryDropped: { cap: s.discoveryDropped?.cap ?? 0, rate: s.discoveryDropped?.rate ?? 0 } } as StoreState;
}
