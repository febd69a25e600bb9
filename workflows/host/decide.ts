/**
 * The whole host state machine as pure functions of (state, observation,
 * status, run facts, now): what to do next and WHY. The workflow carries the
 * decision out and commits transitions in one place; tests table-check every
 * state x condition without Temporal. Model: Metal3's host_state_machine
 * (handlers only choose; one place commits old -> new).
 *
 * Order of precedence in decideHost:
 *   1. holds (paused, detached)          nothing is touched
 *   2. deletion                          towards release, bounded
 *   3. an error waiting out its backoff  wait (a spec change or retryNow wakes it)
 *   4. adoption                          a run that has not confirmed the recorded
 *                                        state with the BMC does so first, and
 *                                        never reboots, inspects or writes for it
 *   5. the state's own work              register, inspect, provision, ...
 *   6. power as spec.online says
 *   7. rest
 */
import type { EraseMode } from '../../api/agent';
import { bmcAddressHasCredentials } from '../../api/bmc-address-redaction';
import { HOST_ERROR_TYPES, type HostErrorType } from '../../api/errors';
import type { CleaningMode, HostEvent, HostFailure, HostObservation, HostState, HostStatus } from '../../api/host';

/** The steps a host workflow runs (each a sequence of activities in operations.ts). */
export const HOST_STEPS = [
  /** Credentials, BMC reachable, power read, boot MAC claimed, identity checked: nothing written, nothing rebooted. */
  'register',
  'inspect',
  'provision',
  'deprovision',
  'power-on',
  'power-off',
  'power-off-before-delete',
] as const;
export type HostStep = (typeof HOST_STEPS)[number];

/** States in which the host rests until the spec asks for something. */
export const STABLE_STATES: readonly HostState[] = ['available', 'provisioned', 'externally provisioned', 'maintenance'];

/** A host being deleted is let go after this many failed attempts of its delete path, with a Warning. */
export const DELETE_MAX_ATTEMPTS = 3;

export interface HostFacts {
  /** The host's Kubernetes namespace (what it may read Secrets from). */
  namespace: string;
  state: HostState;
  obs: HostObservation;
  status: HostStatus;
  /** This run confirmed the recorded state with the BMC (the register step succeeded in this run or its predecessors). */
  adopted: boolean;
  /** Registration succeeded at least once for this object: its hardware has been touched. */
  everRegistered: boolean;
  /** Set while the host is in an error state. */
  failure?: HostFailure;
  /** retryNow arrived, or the spec changed, since the failure. */
  retryRequested: boolean;
  /** Workflow time, ms. */
  now: number;
}

export type HostDecision =
  | { kind: 'hold'; reason: string; detached: boolean }
  | { kind: 'transition'; next: HostState; reason: string; event: HostEvent }
  | { kind: 'run'; step: HostStep; reason: string }
  | { kind: 'wait'; reason: string; untilMs?: number }
  /** Spec or status cannot be acted on: record this as the step's failure (no activity runs). */
  | { kind: 'refuse'; step: HostStep; errorType: HostErrorType; message: string }
  | { kind: 'release'; reason: string; event: HostEvent };

/** Metal3's event reasons for entering each state (BMO publishes these on the BareMetalHost). */
const ENTER_EVENT: Record<HostState, string> = {
  unmanaged: 'Unmanaged',
  registering: 'Registering',
  inspecting: 'InspectionStarted',
  available: 'Available',
  provisioning: 'ProvisioningStarted',
  provisioned: 'ProvisioningComplete',
  deprovisioning: 'DeprovisioningStarted',
  'externally provisioned': 'ExternallyProvisioned',
  'powering off before delete': 'PoweringOffBeforeDelete',
  deleting: 'Deleting',
  maintenance: 'Maintenance',
};

function transition(from: HostState, next: HostState, reason: string): HostDecision {
  const type = next === 'maintenance' ? 'Warning' : 'Normal';
  return { kind: 'transition', next, reason, event: { type, reason: ENTER_EVENT[next], message: `${from} -> ${next}: ${reason}` } };
}

/** Can the workflow act at all? Paused and detached hosts are left alone (a detached host may still be deleted). */
export function holdReason(obs: HostObservation): string | undefined {
  if (obs.paused) return 'paused annotation set: Ironflow takes no action';
  if (obs.detached && !obs.deleting) return 'detached annotation set: Ironflow takes no action';
  return undefined;
}

/**
 * Numbers and strings from the spec that reach the agent or a BMC, checked in
 * the plane before any step uses them. Returns what to fix, or undefined.
 */
export function specProblem(obs: HostObservation, step: HostStep, namespace: string): string | undefined {
  const spec = obs.spec;
  if (!spec.bmc.address) return 'spec.bmc.address is empty: set the BMC address (e.g. redfish://10.0.0.5/redfish/v1/Systems/1)';
  if (bmcAddressHasCredentials(spec.bmc.address)) {
    return 'spec.bmc.address contains credentials (user:password@): remove them and put them in the credentials Secret';
  }
  if (!spec.bmc.credentialsName) return 'spec.bmc.credentialsName is empty: name the Secret holding "username" and "password"';
  const needsMac = step === 'inspect' || step === 'provision' || step === 'deprovision';
  if (needsMac && !spec.bootMACAddress) {
    return 'spec.bootMACAddress is empty: set the MAC of the NIC that PXE-boots to inspect, provision or erase this host';
  }
  if (step === 'provision') {
    const h = spec.rootDeviceHints;
    // 2^20 GiB = 1 PiB: larger than any disk, small enough for any arithmetic on the agent side.
    if (h?.minSizeGigabytes !== undefined && (!Number.isInteger(h.minSizeGigabytes) || h.minSizeGigabytes < 0 || h.minSizeGigabytes > 2 ** 20)) {
      return `spec.rootDeviceHints.minSizeGigabytes must be a whole number from 0 to 1048576 (1 PiB), not ${String(h.minSizeGigabytes).slice(0, 24)}`;
    }
    for (const k of ['deviceName', 'hctl', 'model', 'vendor', 'serialNumber', 'wwn'] as const) {
      const v = h?.[k];
      if (v !== undefined && (v.length > 256 || /[\x00-\x1f\x7f]/.test(v))) return `spec.rootDeviceHints.${k} must be at most 256 printable characters`;
    }
    if (spec.userData?.namespace && spec.userData.namespace !== namespace) {
      return `spec.userData.namespace is ${spec.userData.namespace}, but a host reads user data only from its own namespace (${namespace}): move the Secret there`;
    }
    const plan = checksumPlan(spec.image);
    if (!plan.ok) return plan.message;
  }
  return undefined;
}

/** The step a state's own work is, when it has one, and what it does. */
const STATE_STEP: Partial<Record<HostState, { step: HostStep; does: string }>> = {
  registering: { step: 'register', does: 'check the BMC credentials, read power, claim the boot MAC' },
  inspecting: { step: 'inspect', does: 'boot the agent to inspect the hardware' },
  provisioning: { step: 'provision', does: 'boot the agent to write and verify the image' },
  deprovisioning: { step: 'deprovision', does: 'boot the agent to erase the disks' },
  'powering off before delete': { step: 'power-off-before-delete', does: 'power off, then release the object' },
};

function deletionDecision(f: HostFacts): HostDecision | undefined {
  const { state, obs, status } = f;
  if (!obs.deleting) return undefined;
  if (obs.detached) {
    return { kind: 'release', reason: 'deleted while detached: the hardware is left as it is', event: { type: 'Normal', reason: 'Deleted', message: 'deleted while detached: no power action, no erase' } };
  }
  if (state === 'deleting') return { kind: 'release', reason: 'hardware is safe', event: { type: 'Normal', reason: 'Deleted', message: 'hardware safe: finalizer removed' } };
  switch (state) {
    case 'unmanaged':
      return transition(state, 'deleting', 'deleted while unmanaged: there is no BMC to act through');
    case 'registering':
      return f.everRegistered
        ? transition(state, 'powering off before delete', 'deletion requested')
        : transition(state, 'deleting', 'deleted before registration succeeded: the hardware was never touched');
    case 'provisioning':
      return transition(state, 'deprovisioning', 'deleted while provisioning: the partly written disk is erased first');
    case 'provisioned':
      return transition(state, 'deprovisioning', 'deletion requested on a provisioned host: erase before release');
    case 'inspecting':
    case 'available':
    case 'externally provisioned':
    case 'maintenance':
      return transition(state, 'powering off before delete', 'deletion requested');
    default:
      break;
  }
  // deprovisioning and powering off before delete go on with their own step, a bounded number of times.
  if (f.failure && status.errorCount >= DELETE_MAX_ATTEMPTS) {
    const skipped = state === 'deprovisioning' ? 'the disks were NOT erased and the server may still be powered on' : 'the server was NOT powered off';
    const msg = `let go after ${status.errorCount} failed attempts while deleting (${status.errorType ?? 'error'}: ${status.errorMessage ?? 'unknown'}): ${skipped}`;
    return { kind: 'release', reason: msg, event: { type: 'Warning', reason: 'DeleteIncomplete', message: msg } };
  }
  return undefined;
}

function stableDecision(f: HostFacts): HostDecision {
  const { state, obs, status } = f;
  const spec = obs.spec;
  switch (state) {
    case 'available':
      if (spec.externallyProvisioned) return transition(state, 'externally provisioned', 'spec.externallyProvisioned set');
      if (spec.image?.url) return transition(state, 'provisioning', `spec.image set to ${spec.image.url}`);
      break;
    case 'provisioned': {
      const current = status.provisioning.image;
      if (!spec.image?.url) return transition(state, 'deprovisioning', 'spec.image removed');
      if (spec.image.url !== current?.url || (spec.image.checksum ?? '') !== (current?.checksum ?? '')) {
        return transition(state, 'deprovisioning', `image changed from ${current?.url} to ${spec.image.url}: deprovision, then provision`);
      }
      break;
    }
    case 'externally provisioned':
      if (!spec.externallyProvisioned) {
        return status.hardware
          ? transition(state, 'available', 'spec.externallyProvisioned cleared')
          : transition(state, 'inspecting', 'spec.externallyProvisioned cleared; hardware not yet inspected');
      }
      break;
    default:
      // maintenance: failed hardware stays out of the pool; only power and deletion are honoured.
      break;
  }
  if (spec.online !== status.poweredOn) {
    return { kind: 'run', step: spec.online ? 'power-on' : 'power-off', reason: `spec.online is ${spec.online}, host is powered ${status.poweredOn ? 'on' : 'off'}` };
  }
  return { kind: 'wait', reason: `${state}: nothing to do until the spec changes` };
}

/** The next thing a host workflow does. */
export function decideHost(f: HostFacts): HostDecision {
  const { state, obs, status } = f;
  const hold = holdReason(obs);
  if (hold) return { kind: 'hold', reason: hold, detached: obs.detached };

  const deletion = deletionDecision(f);
  if (deletion) return deletion;

  if (f.failure && !f.retryRequested && f.now < f.failure.retryAtMs) {
    const seconds = Math.ceil((f.failure.retryAtMs - f.now) / 1000);
    return { kind: 'wait', reason: `${status.errorType ?? 'error'}: retrying in ${seconds} s, on a spec change, or on retryNow`, untilMs: f.failure.retryAtMs };
  }

  // States that only make sense while the object is being deleted: a recorded
  // status from a deletion that was undone (object re-created) starts over safely.
  if ((state === 'powering off before delete' || state === 'deleting') && !obs.deleting) {
    return transition(state, 'registering', `recorded state ${state} but the object is not being deleted: register again`);
  }
  if (state === 'unmanaged') {
    return obs.spec.bmc.address ? transition(state, 'registering', 'spec.bmc.address set') : { kind: 'wait', reason: 'unmanaged: set spec.bmc.address to manage this host' };
  }

  const own = STATE_STEP[state];
  if (!f.adopted && state !== 'registering' && state !== 'powering off before delete') {
    const problem = specProblem(obs, 'register', f.namespace);
    if (problem) return { kind: 'refuse', step: 'register', errorType: errorTypeFor(state, 'register'), message: problem };
    if (state === 'provisioned' && !status.provisioning.image?.url) {
      return {
        kind: 'refuse',
        step: 'register',
        errorType: HOST_ERROR_TYPES.provisionedRegistration,
        message:
          'status says provisioned but records no image, so Ironflow cannot tell what is on the disk and will not touch it: ' +
          'restore status.provisioning.image, or set spec.externallyProvisioned to manage power only',
      };
    }
    return { kind: 'run', step: 'register', reason: `adopting the recorded state ${state}: BMC reachable and power read, nothing rebooted or written` };
  }

  if (own) {
    if (state === 'provisioning' && !obs.spec.image?.url) {
      return transition(state, 'deprovisioning', 'spec.image removed while provisioning: the disk is erased and the host returns to available');
    }
    const problem = specProblem(obs, own.step, f.namespace);
    if (problem) return { kind: 'refuse', step: own.step, errorType: errorTypeFor(state, own.step), message: problem };
    return { kind: 'run', step: own.step, reason: `${state}: ${own.does}` };
  }
  if (STABLE_STATES.includes(state)) return stableDecision(f);
  return { kind: 'wait', reason: `unknown state ${state}: nothing is done` };
}

/** Where a step that succeeded leads. Undefined = stay in the state. */
export function afterStep(
  f: Pick<HostFacts, 'state' | 'obs' | 'status'>,
  step: HostStep,
  outcome: { kind: 'done'; message?: string } | { kind: 'disk-failed'; message: string },
): HostDecision | undefined {
  const { state, obs, status } = f;
  if (outcome.kind === 'disk-failed') {
    return obs.deleting ? transition(state, 'powering off before delete', outcome.message) : transition(state, 'maintenance', outcome.message);
  }
  switch (step) {
    case 'register':
      if (state !== 'registering') return undefined;
      if (obs.spec.externallyProvisioned) return transition(state, 'externally provisioned', 'spec.externallyProvisioned is true: Ironflow manages power only');
      if (status.hardware) return transition(state, 'available', 'registered; hardware details already known');
      return transition(state, 'inspecting', 'registered; hardware not yet inspected');
    case 'inspect':
      return transition(state, 'available', 'inspection finished');
    case 'provision':
      return transition(state, 'provisioned', `image ${status.provisioning.image?.url ?? obs.spec.image?.url ?? ''} written and verified`);
    case 'deprovision':
      return obs.deleting ? transition(state, 'powering off before delete', outcome.message ?? 'deprovisioned') : transition(state, 'available', outcome.message ?? 'deprovisioned');
    case 'power-off-before-delete':
      return transition(state, 'deleting', 'powered off');
    default:
      return undefined;
  }
}

/** The Metal3 errorType of a failed `step` in `state`. */
export function errorTypeFor(state: HostState, step: HostStep): HostErrorType {
  if (step === 'power-on' || step === 'power-off' || step === 'power-off-before-delete') return HOST_ERROR_TYPES.powerManagement;
  if (step === 'register' && (state === 'provisioned' || state === 'externally provisioned')) return HOST_ERROR_TYPES.provisionedRegistration;
  switch (state) {
    case 'registering':
      return HOST_ERROR_TYPES.registration;
    case 'inspecting':
      return step === 'register' ? HOST_ERROR_TYPES.registration : HOST_ERROR_TYPES.inspection;
    case 'provisioning':
      return step === 'register' ? HOST_ERROR_TYPES.registration : HOST_ERROR_TYPES.provisioning;
    case 'deprovisioning':
      return step === 'register' ? HOST_ERROR_TYPES.registration : HOST_ERROR_TYPES.deprovisioning;
    case 'provisioned':
    case 'externally provisioned':
      return HOST_ERROR_TYPES.provisionedRegistration;
    case 'available':
    case 'maintenance':
      return HOST_ERROR_TYPES.registration;
    default:
      return HOST_ERROR_TYPES.powerManagement;
  }
}

/** Metal3's event reason for an error type ("registration error" -> "RegistrationError"). */
export function errorEventReason(type: HostErrorType): string {
  return type.replace(/(^|\s)(\w)/g, (_m, _s: string, c: string) => c.toUpperCase());
}

/**
 * Delay before the automatic retry of a failed step: capped exponential with
 * +-20 % jitter (`jitter` in [0, 1), from the workflow's deterministic random),
 * so a fleet that failed together does not retry together.
 *   errorCount 1 -> 10 s, 2 -> 20 s, 3 -> 40 s, ... 7+ -> 600 s (each x 0.8..1.2)
 * While the object is being deleted the cap is 30 s: deletion must end in bounded time.
 */
export function retryDelayMs(errorCount: number, jitter = 0.5, deleting = false): number {
  const base = 10_000;
  const cap = deleting ? 30_000 : 600_000;
  const raw = Math.min(cap, base * 2 ** Math.max(0, errorCount - 1));
  return Math.round(raw * (0.8 + 0.4 * Math.min(Math.max(jitter, 0), 1)));
}

export type CleaningPlan =
  | { erase: false; reason: string }
  | { erase: true; mode: EraseMode; needsApproval: boolean; reason: string };

/** What deprovisioning does with the disks, per automatedCleaningMode and the precious-data mark. */
export function cleaningPlan(mode: CleaningMode, preciousData: boolean, approved: boolean): CleaningPlan {
  if (mode === 'disabled') return { erase: false, reason: 'automatedCleaningMode is disabled' };
  const needsApproval = preciousData && !approved;
  return {
    erase: true,
    mode,
    needsApproval,
    reason: needsApproval ? `host is marked precious-data: erase (${mode}) waits for an approveErase update` : `erase disks (${mode})`,
  };
}

/** True when a newer observation should replace the one held (the bridge may resend older ones after a restart). */
export function isNewerObservation(held: HostObservation | undefined, incoming: HostObservation): boolean {
  if (!held) return true;
  const a = Number(held.resourceVersion);
  const b = Number(incoming.resourceVersion);
  // resourceVersions are opaque; etcd's are integers, so compare numerically when both are.
  if (Number.isFinite(a) && Number.isFinite(b)) return b >= a;
  return incoming.resourceVersion !== held.resourceVersion;
}

/** Did the spec change in a way a failed step may care about (anything but status-only noise)? */
export function specChanged(a: HostObservation, b: HostObservation): boolean {
  return JSON.stringify(a.spec) !== JSON.stringify(b.spec) || a.deleting !== b.deleting || a.paused !== b.paused || a.detached !== b.detached || a.preciousData !== b.preciousData;
}

/**
 * Where a run starts: a carried state (continue-as-new) as is; otherwise the
 * object's recorded status (the durable record), or registration for a new
 * host. A recorded state is adopted, never redone: the run confirms it with
 * the BMC before anything else (decideHost step 4).
 */
export function startingState(recorded: HostStatus | undefined): { state: HostState; reason: string } {
  const s = recorded?.provisioning?.state;
  if (!s) return { state: 'registering', reason: 'no recorded status: a new host' };
  return { state: s, reason: `adopting recorded state ${s}` };
}

export type ChecksumPlan =
  | { ok: true; checksum: string; checksumType: 'sha256' | 'sha512' }
  | { ok: false; message: string };

/**
 * Which checksum the agent verifies. `auto` (and a missing type) is inferred
 * from the hex length: 64 chars -> sha256, 128 -> sha512. md5 is refused:
 * it does not protect an image against tampering.
 */
export function checksumPlan(image: HostObservation['spec']['image']): ChecksumPlan {
  if (!image?.url) return { ok: false, message: 'spec.image.url is empty: set the image to provision' };
  const sum = (image.checksum ?? '').trim().toLowerCase();
  if (!/^[0-9a-f]+$/.test(sum)) {
    return { ok: false, message: `spec.image.checksum must be the hex sha256 or sha512 of ${image.url} (got ${sum ? `"${sum.slice(0, 16)}..."` : 'nothing'})` };
  }
  const type = image.checksumType ?? 'auto';
  if (type === 'md5') return { ok: false, message: 'spec.image.checksumType md5 is not accepted: use sha256 or sha512' };
  const inferred = sum.length === 64 ? 'sha256' : sum.length === 128 ? 'sha512' : undefined;
  if (type === 'auto') {
    return inferred ? { ok: true, checksum: sum, checksumType: inferred } : { ok: false, message: `spec.image.checksum has ${sum.length} hex digits: expected 64 (sha256) or 128 (sha512)` };
  }
  if (inferred !== type) return { ok: false, message: `spec.image.checksum has ${sum.length} hex digits, which is not a ${type}` };
  return { ok: true, checksum: sum, checksumType: type };
}

/**
 * Does the BMC still front the server this host was inspected as? A
 * different system serial means spec.bmc.address now points at another
 * machine: acting on it would destroy someone else's server.
 */
export function identityProblem(recorded: HostStatus, bmcSerial: string | undefined, address: string): string | undefined {
  const inspected = recorded.hardware?.system?.serialNumber;
  if (!inspected || !bmcSerial) return undefined;
  if (inspected.trim() === bmcSerial.trim()) return undefined;
  return `the BMC at ${address} reports system serial ${bmcSerial}, but this host was inspected as ${inspected}: spec.bmc.address may point at another server; fix it (nothing was done to either machine)`;
}
