/**
 * The conditions of the host state-machine table (host-decide.test.ts): each
 * builds the facts a host in `state` has under that condition.
 */
import type { HostObservation, HostState, HostStatus } from '../../api/host';
import type { HostFacts } from '../../workflows/host/decide';

export const NOW = 1_000_000;
export const IMG = { url: 'http://x/os.img', checksum: 'a'.repeat(64) };

/** A spec that asks nothing new of a host resting in `state`. */
function restingSpec(state: HostState): Partial<HostObservation['spec']> {
  switch (state) {
    case 'provisioning':
    case 'provisioned':
      return { image: IMG };
    case 'externally provisioned':
      return { externallyProvisioned: true };
    default:
      return {};
  }
}

export const obs = (state: HostState, extra: Partial<HostObservation> = {}, spec: Partial<HostObservation['spec']> = {}): HostObservation => ({
  generation: 1,
  resourceVersion: '10',
  spec: { online: false, bmc: { address: 'ipmi://127.0.0.1:623', credentialsName: 's' }, bootMACAddress: '52:54:00:00:00:01', automatedCleaningMode: 'metadata', ...restingSpec(state), ...spec },
  paused: false,
  detached: false,
  preciousData: false,
  deleting: false,
  ...extra,
});

export const status = (state: HostState, extra: Partial<HostStatus> = {}): HostStatus => ({
  provisioning: { state, ...(state === 'provisioned' ? { image: IMG } : {}) },
  operationalStatus: 'OK',
  errorCount: 0,
  poweredOn: false,
  lastUpdated: '2026-01-01T00:00:00Z',
  ...extra,
});

const base = (state: HostState): HostFacts => ({
  namespace: 'ns',
  state,
  obs: obs(state),
  status: status(state),
  adopted: true,
  everRegistered: state !== 'registering' && state !== 'unmanaged',
  retryRequested: false,
  now: NOW,
});

export const CONDITIONS = {
  /** Adopted, no error, the spec asks for nothing new. */
  resting: (s: HostState): HostFacts => base(s),
  /** metadata.deletionTimestamp set. */
  deleting: (s: HostState): HostFacts => ({ ...base(s), obs: obs(s, { deleting: true }) }),
  detached: (s: HostState): HostFacts => ({ ...base(s), obs: obs(s, { detached: true }) }),
  /** Paused, even while deleting: paused stops everything (Metal3). */
  paused: (s: HostState): HostFacts => ({ ...base(s), obs: obs(s, { paused: true, deleting: true }) }),
  /** The credentials Secret is gone: the last step failed with BmcCredentialsMissing and waits out its backoff. */
  'credentials gone': (s: HostState): HostFacts => ({
    ...base(s),
    adopted: false,
    status: status(s, { errorCount: 1, errorType: 'registration error', errorMessage: 'BMC credentials Secret ns/s does not exist', operationalStatus: 'error' }),
    failure: { step: 'register', type: 'BmcCredentialsMissing', retryAtMs: NOW + 10_000 },
  }),
  /** Deleting, and the delete path failed 3 times (the BMC is dead). */
  'N failures while deleting': (s: HostState): HostFacts => ({
    ...base(s),
    obs: obs(s, { deleting: true }),
    status: status(s, { errorCount: 3, errorType: 'power management error', errorMessage: 'BMC 127.0.0.1:623 did not answer', operationalStatus: 'error' }),
    failure: { step: 'power-off-before-delete', type: 'BmcUnreachable', retryAtMs: NOW + 10_000 },
  }),
  /** A new run (terminate, reset, lost Temporal database) that starts from the recorded status. */
  'fresh run with recorded status': (s: HostState): HostFacts => ({ ...base(s), adopted: false }),
} as const;
export type Condition = keyof typeof CONDITIONS;
