/**
 * Pure decisions of the host lifecycle: functions of (state, observation,
 * status facts) that return what to do next and WHY. The workflow body carries
 * them out; tests table-check them without Temporal.
 */
import type { EraseMode } from '../../api/agent';
import { HOST_ERROR_TYPES, type HostErrorType } from '../../api/errors';
import type { CleaningMode, HostObservation, HostState, HostStatus } from '../../api/host';

/** States in which the host rests until the spec asks for something. */
export const STABLE_STATES: readonly HostState[] = ['available', 'provisioned', 'externally provisioned', 'maintenance'];

export type StableAction =
  | { kind: 'transition'; next: HostState; reason: string }
  | { kind: 'power'; state: 'on' | 'off'; reason: string }
  | { kind: 'wait'; reason: string };

/** Where a new workflow starts: the carried status after continue-as-new, else registration. */
export function initialState(carried: HostStatus | undefined): HostState {
  return carried?.provisioning.state ?? 'registering';
}

/** After registration succeeds: skip inspection when it is not needed. */
export function afterRegistration(obs: HostObservation, status: HostStatus): { next: HostState; reason: string } {
  if (obs.spec.externallyProvisioned) return { next: 'externally provisioned', reason: 'spec.externallyProvisioned is true: Ironflow manages power only' };
  if (status.hardware) return { next: 'available', reason: 'hardware details already known' };
  return { next: 'inspecting', reason: 'registered; hardware not yet inspected' };
}

/**
 * What a host in a stable state should do for this observation. Order matters:
 * deletion beats everything, then provisioning intent, then power.
 */
export function decideStable(state: HostState, obs: HostObservation, status: HostStatus): StableAction {
  const spec = obs.spec;
  if (obs.deleting) {
    if (state === 'provisioned') return { kind: 'transition', next: 'deprovisioning', reason: 'deletion requested on a provisioned host: erase before release' };
    return { kind: 'transition', next: 'powering off before delete', reason: 'deletion requested' };
  }
  switch (state) {
    case 'available':
      if (spec.externallyProvisioned) return { kind: 'transition', next: 'externally provisioned', reason: 'spec.externallyProvisioned set' };
      if (spec.image?.url) return { kind: 'transition', next: 'provisioning', reason: `spec.image set to ${spec.image.url}` };
      break;
    case 'provisioned': {
      const current = status.provisioning.image?.url;
      if (!spec.image?.url) return { kind: 'transition', next: 'deprovisioning', reason: 'spec.image removed' };
      if (current && spec.image.url !== current) return { kind: 'transition', next: 'deprovisioning', reason: `image changed from ${current} to ${spec.image.url}: deprovision, then provision` };
      break;
    }
    case 'externally provisioned':
      if (!spec.externallyProvisioned) {
        return status.hardware
          ? { kind: 'transition', next: 'available', reason: 'spec.externallyProvisioned cleared' }
          : { kind: 'transition', next: 'inspecting', reason: 'spec.externallyProvisioned cleared; hardware not yet inspected' };
      }
      break;
    case 'maintenance':
      // Failed hardware stays out of the pool; only power and deletion are honoured.
      break;
    default:
      return { kind: 'wait', reason: `${state} is not a stable state` };
  }
  if (spec.online !== status.poweredOn) {
    return { kind: 'power', state: spec.online ? 'on' : 'off', reason: `spec.online is ${spec.online}, host is powered ${status.poweredOn ? 'on' : 'off'}` };
  }
  return { kind: 'wait', reason: `${state}: nothing to do until the spec changes` };
}

/** The Metal3 errorType of a failure during `state`. */
export function errorTypeFor(state: HostState, step: 'power' | 'operation'): HostErrorType {
  if (step === 'power') return HOST_ERROR_TYPES.powerManagement;
  switch (state) {
    case 'registering':
      return HOST_ERROR_TYPES.registration;
    case 'inspecting':
      return HOST_ERROR_TYPES.inspection;
    case 'provisioning':
      return HOST_ERROR_TYPES.provisioning;
    case 'deprovisioning':
      return HOST_ERROR_TYPES.deprovisioning;
    case 'provisioned':
    case 'externally provisioned':
      return HOST_ERROR_TYPES.provisionedRegistration;
    default:
      return HOST_ERROR_TYPES.powerManagement;
  }
}

/**
 * Capped exponential backoff between retries of a failed step.
 * errorCount 1 -> 10 s, 2 -> 20 s, 3 -> 40 s, ... 7 -> 640 s, capped at 600 s.
 */
export function retryDelayMs(errorCount: number): number {
  const base = 10_000;
  const cap = 600_000;
  return Math.min(cap, base * 2 ** Math.max(0, errorCount - 1));
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

/** Can the workflow act at all? Paused and detached hosts are left alone. */
export function holdReason(obs: HostObservation): string | undefined {
  if (obs.detached && !obs.deleting) return 'detached annotation set: Ironflow takes no action';
  if (obs.paused) return 'paused annotation set: Ironflow takes no action';
  return undefined;
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
