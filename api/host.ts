/**
 * The BareMetalHost as the host workflow sees it, and the messages between
 * the bridge, the agent API, operators and the host workflow
 * (id `host/<namespace>/<name>`, see api/names.ts). Only references travel
 * here (Secret names), never credentials or user data.
 */
import type { AgentReportSignal, DiskEraseRecord, InspectionData, RootDeviceHints } from './agent';
import type { HostErrorType } from './errors';

export interface HostRef {
  namespace: string;
  name: string;
}

/** Metal3 provisioning states, as `kubectl get bmh` prints them. */
export const HOST_STATES = [
  'unmanaged',
  'registering',
  'inspecting',
  'available',
  'provisioning',
  'provisioned',
  'deprovisioning',
  'externally provisioned',
  'powering off before delete',
  'deleting',
  // Ironflow: failed hardware that must not go back to the pool.
  'maintenance',
] as const;
export type HostState = (typeof HOST_STATES)[number];

export type CleaningMode = 'metadata' | 'disabled' | 'full' | 'secure';

/** spec of a BareMetalHost, reduced to what Ironflow acts on. */
export interface HostSpec {
  online: boolean;
  bmc: { address: string; credentialsName: string; disableCertificateVerification?: boolean };
  bootMACAddress?: string;
  image?: { url: string; checksum?: string; checksumType?: 'md5' | 'sha256' | 'sha512' | 'auto'; format?: string };
  /** Secret holding user data (key `userData` or `value`). A reference only. */
  userData?: { name: string; namespace?: string };
  consumerRef?: { apiVersion?: string; kind?: string; name: string; namespace?: string; uid?: string };
  rootDeviceHints?: RootDeviceHints;
  automatedCleaningMode: CleaningMode;
  externallyProvisioned?: boolean;
}

/** Annotations that change what Ironflow may do. */
export const HOST_ANNOTATIONS = {
  /** Metal3: stop all action, keep status as is. */
  paused: 'baremetalhost.metal3.io/paused',
  /** Metal3: Ironflow lets go of the host (no power actions, no erase on delete). */
  detached: 'baremetalhost.metal3.io/detached',
  /** Ironflow: erasing this host needs an approval (update `approveErase`). */
  preciousData: 'ironflow.dev/precious-data',
} as const;

/** The finalizer that keeps a BareMetalHost until its workflow says the hardware is safe. */
export const HOST_FINALIZER = 'ironflow.dev/hardware-safe';

/** One observation of the object, sent by the bridge on every add/update/delete. */
export interface HostObservation {
  generation: number;
  resourceVersion: string;
  spec: HostSpec;
  paused: boolean;
  detached: boolean;
  preciousData: boolean;
  /** metadata.deletionTimestamp is set (the finalizer holds the object). */
  deleting: boolean;
}

export interface HostWorkflowInput {
  ref: HostRef;
  observation: HostObservation;
  /**
   * The object's status as the bridge last saw it: the durable record. A run
   * that starts with no carried state (first start, or a new run after a
   * terminate, reset, failure or lost Temporal database) adopts the host from
   * it and never reboots, re-inspects or re-images it because its own
   * history is empty.
   */
  recorded?: HostStatus;
  /** Carried across continue-as-new (everything a run holds that the object does not). */
  carried?: HostCarried;
  /** Continue as new past this many history events while resting (default 2000; tests set it low). */
  historyLimit?: number;
}

/** The agent session a run is waiting on (ids only: the plane's session store holds the rest). */
export interface HostSessionRef {
  commandId: string;
  type: 'inspect' | 'deploy' | 'erase';
  bootId?: string;
  /** Set once the machine was powered on / reset into this boot. */
  booted: boolean;
  /** Workflow time (ms) when the session was started; the agent deadline counts from here. */
  startedAtMs: number;
}

/** A failed step, while the host is in an error state. */
export interface HostFailure {
  step: string;
  /** The ApplicationFailure type, when the step raised one (api/errors.ts FAILURE). */
  type?: string;
  /** Workflow time (ms) of the next automatic retry. */
  retryAtMs: number;
}

/** What a host workflow run carries into its continue-as-new successor. */
export interface HostCarried {
  status: HostStatus;
  /** This host's recorded state was confirmed with its BMC (adopted or registered). */
  adopted: boolean;
  /** Registration succeeded at least once for this object (its hardware has been touched). */
  everRegistered: boolean;
  failure?: HostFailure;
  approval?: { approver: string; at: string };
  session?: HostSessionRef;
  /** Agent reports received and not yet consumed. */
  reports: AgentReportSignal[];
}

export interface EraseRecordEntry extends DiskEraseRecord {
  mode: CleaningMode;
}

/** Status as written to the BareMetalHost status subresource (Metal3 field names). */
export interface HostStatus {
  provisioning: {
    state: HostState;
    ID?: string;
    image?: HostSpec['image'];
    rootDeviceHints?: RootDeviceHints;
    bootMode?: string;
  };
  operationalStatus: 'OK' | 'discovered' | 'error' | 'delayed' | 'detached' | 'servicing';
  errorType?: HostErrorType;
  errorMessage?: string;
  errorCount: number;
  poweredOn: boolean;
  hardware?: InspectionData;
  hardwareProfile?: string;
  lastUpdated: string;
  /** Ironflow: every erase done on this host (disk serial, method, result, time). */
  erase?: EraseRecordEntry[];
  /** Ironflow: who approved the last destructive step on precious data. */
  lastApproval?: { action: string; approver: string; at: string };
}

/** A Kubernetes Event on the BareMetalHost, as BMO emits them (reason in UpperCamelCase). */
export interface HostEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/** Signal and query names; workflows define them with these names (workflows/host/messages.ts). */
export const HOST_MESSAGES = {
  observed: 'hostObserved',
  agentReport: 'agentReport',
  retryNow: 'retryNow',
  approveErase: 'approveErase',
  status: 'hostStatus',
} as const;

export type { AgentReportSignal };
