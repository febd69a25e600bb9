/**
 * The ramdisk agent's protocol with Ironflow (HTTP, JSON), modelled on
 * Ironic's agent, but stricter: the token is NEVER handed out on request.
 * It reaches the ramdisk on the kernel command line (`ironflow.token=`,
 * api/pxe.ts AGENT_CMDLINE) of a per-boot iPXE script that is served once;
 * every call carries it in the `X-Ironflow-Agent-Token` header and is refused
 * (401) without it, or (403) when it belongs to another host or an ended boot.
 *
 *   POST /v1/agent/lookup                         {bootId?} -> LookupResponse (who the token belongs to)
 *   GET  /v1/agent/hosts/:ns/:name/command        -> { command: AgentCommand }
 *   POST /v1/agent/hosts/:ns/:name/reports        AgentReport -> 204
 *   GET  /v1/agent/hosts/:ns/:name/user-data      -> the user data bytes (deploy only)
 *
 * One token = one host, one boot, one command. Final reports are checked
 * (evidence, see VerifyRegions) and kept in the plane's durable session
 * store before the agent gets 204; they reach the host workflow as the
 * `agentReport` signal (redelivered until Temporal takes them). Progress
 * reports are coalesced in the plane (at most one signal per session per
 * interval). Nothing here carries a secret except the token header and user
 * data, which never enter workflow history.
 */

export const AGENT_TOKEN_HEADER = 'x-ironflow-agent-token';
export const AGENT_API_PREFIX = '/v1/agent';

export interface LookupRequest {
  /** The boot id from the kernel command line; a mismatch with the token's boot is refused (403). */
  bootId?: string;
}
export interface LookupResponse {
  namespace: string;
  name: string;
  bootId: string;
  /** Seconds between command polls. */
  pollIntervalSeconds: number;
}

export type EraseMode = 'metadata' | 'full' | 'secure';

export interface RootDeviceHints {
  deviceName?: string;
  hctl?: string;
  model?: string;
  vendor?: string;
  serialNumber?: string;
  minSizeGigabytes?: number;
  wwn?: string;
  rotational?: boolean;
}

/**
 * Regions the agent reads back after writing or erasing, hashed together
 * (sha256 over the bytes of every region, in order). The plane chooses them
 * when it starts the session and knows what they must hash to (zeros after an
 * erase, the image's bytes after a deploy), so a report cannot claim work that
 * was not done on that disk.
 */
export interface VerifyRegions {
  regions: Array<{ offset: number; length: number }>;
}

/** A disk as inspection recorded it: the agent must act on exactly this disk and report these facts back. */
export interface ExpectedDisk {
  name: string;
  serialNumber: string;
  sizeBytes: number;
}

export type AgentCommand =
  | { id: string; type: 'none' }
  | { id: string; type: 'inspect' }
  | {
      id: string;
      type: 'deploy';
      imageUrl: string;
      checksum: string;
      checksumType: 'sha256' | 'sha512';
      rootDeviceHints?: RootDeviceHints;
      /** True when user data is waiting at .../user-data (fetched with the token). */
      hasUserData: boolean;
      /** Set by the plane when it starts the session (see VerifyRegions). */
      verify?: VerifyRegions;
    }
  | {
      id: string;
      type: 'erase';
      mode: EraseMode;
      /** The inspected disks (set by the plane); the agent erases these, by serial, and no other. */
      disks?: ExpectedDisk[];
      /** Per disk name, regions read back after the erase (set by the plane). */
      verify?: Record<string, VerifyRegions>;
    }
  | { id: string; type: 'poweroff' };
export type AgentCommandType = AgentCommand['type'];

export interface DiskInfo {
  /** Kernel name, e.g. vda, sda, nvme0n1 */
  name: string;
  sizeBytes: number;
  serialNumber: string;
  model: string;
  vendor?: string;
  rotational: boolean;
  wwn?: string;
  hctl?: string;
}
export interface NicInfo {
  name: string;
  mac: string;
  ip?: string;
  speedMbps?: number;
}
export interface InspectionData {
  cpu: { arch: string; model: string; count: number; mhz?: number };
  memoryMiB: number;
  disks: DiskInfo[];
  nics: NicInfo[];
  system: { manufacturer?: string; productName?: string; serialNumber?: string };
  bootMode?: 'UEFI' | 'legacy';
}

export interface DeployResult {
  rootDevice: string;
  /** Evidence: the root device's serial and size as the agent reads them now (must match inspection). */
  rootDeviceSerial?: string;
  rootDeviceSizeBytes?: number;
  /** Evidence: sha256 over the command's verify regions read back from the root device. */
  sampleSha256?: string;
  bytesWritten: number;
  checksumType: 'sha256' | 'sha512';
  /** The checksum the agent computed over what it wrote (read back from disk). */
  checksum: string;
  userDataWritten: boolean;
}

export interface DiskEraseRecord {
  disk: string;
  serialNumber: string;
  method: 'metadata' | 'overwrite' | 'secure-erase' | 'discard';
  result: 'ok' | 'failed';
  /** Sampled blocks read back after erase were all zero. */
  verified: boolean;
  /** Evidence: the disk's size as the agent reads it now (must match inspection). */
  sizeBytes?: number;
  /** Evidence: sha256 over the command's verify regions of this disk, read back after the erase. */
  sampleSha256?: string;
  detail?: string;
  finishedAt: string;
}
export interface EraseResult {
  mode: EraseMode;
  disks: DiskEraseRecord[];
}

export type AgentReport =
  | { commandId: string; type: 'inspect'; status: 'ok'; data: InspectionData }
  | { commandId: string; type: 'deploy'; status: 'ok'; data: DeployResult }
  | { commandId: string; type: 'erase'; status: 'ok'; data: EraseResult }
  | { commandId: string; type: AgentCommandType; status: 'progress'; message: string; percent?: number }
  | { commandId: string; type: AgentCommandType; status: 'failed'; message: string; failedDisk?: string };

/** The signal the agent API sends the host workflow, with the report and who sent it. */
export interface AgentReportSignal {
  bootId: string;
  report: AgentReport;
  receivedAt: string;
  /**
   * Set when the plane ended the session itself (its iPXE script was fetched
   * a second time, so the token may be in other hands; or its final reports
   * failed the evidence check repeatedly): `report` is then a 'failed' report
   * naming why, and the workflow retries the operation with a fresh boot.
   */
  invalidated?: boolean;
}

/**
 * One agent session = one boot of one host for exactly one command. The
 * plane keeps sessions in a durable store (they survive a plane restart), and
 * that store is the one source of which boot of a host is current.
 *
 *   prepared  -> the per-boot iPXE script not yet served; no token exists yet (it is
 *                minted when the script is served, so no plaintext token rests on disk)
 *   booting   -> the script (token on its kernel command line) was served, once;
 *                waiting for the agent's first call
 *   running   -> the agent called in with the token
 *   finished  -> the final report for the command was accepted (kept in `report`)
 *   invalidated -> ended by the plane (see invalidatedReason); its token no longer works.
 *                A session replaced by a newer one of the same host (a new boot was
 *                prepared) ends this way too, without a signal: the workflow asked for it.
 */
export type AgentSessionState = 'prepared' | 'booting' | 'running' | 'finished' | 'invalidated';

/** What the plane tells a workflow about a session (never the token or user data). */
export interface AgentSessionView {
  bootId: string;
  commandId: string;
  type: AgentCommandType;
  state: AgentSessionState;
  /** The command as issued (what a resuming run checks against its spec); no user data. */
  command?: AgentCommand;
  preparedAt: string;
  /** The final report, once finished. */
  report?: AgentReport;
  invalidatedReason?: string;
  /** Latest progress report (coalesced in the plane; not one signal each). */
  progress?: { message: string; percent?: number; at: string };
}
