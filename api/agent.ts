/**
 * The ramdisk agent's protocol with Ironflow (HTTP, JSON), modelled on
 * Ironic's agent: lookup by MAC issues a per-boot token ONCE; every later
 * call carries it in the `X-Ironflow-Agent-Token` header and is refused
 * (401) without it, or (403) when it belongs to another host or boot.
 *
 *   POST /v1/agent/lookup                         {macs, bootId?} -> LookupResponse
 *   GET  /v1/agent/hosts/:ns/:name/command        -> { command: AgentCommand }
 *   POST /v1/agent/hosts/:ns/:name/reports        AgentReport -> 204
 *   GET  /v1/agent/hosts/:ns/:name/user-data      -> the user data bytes (deploy only)
 *
 * Reports are forwarded to the host workflow as the `agentReport` signal.
 * Nothing here carries a secret except the token header and user data, which
 * never enter workflow history.
 */

export const AGENT_TOKEN_HEADER = 'x-ironflow-agent-token';
export const AGENT_API_PREFIX = '/v1/agent';

export interface LookupRequest {
  macs: string[];
  bootId?: string;
}
export interface LookupResponse {
  namespace: string;
  name: string;
  bootId: string;
  /** Issued once per boot; a second lookup for the same boot gets 409. */
  token: string;
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
    }
  | { id: string; type: 'erase'; mode: EraseMode }
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
}
