/**
 * The one closed list of failure types. Activities throw
 * `ApplicationFailure.create({ type, nonRetryable, message })` with these
 * types; retry policies list the non-retryable ones; the host status shows
 * them as `errorType` (the first six are Metal3's words).
 */
export const HOST_ERROR_TYPES = {
  registration: 'registration error',
  inspection: 'inspection error',
  provisioning: 'provisioning error',
  powerManagement: 'power management error',
  deprovisioning: 'deprovisioning error',
  provisionedRegistration: 'provisioned registration error',
  detach: 'detach error',
} as const;
export type HostErrorType = (typeof HOST_ERROR_TYPES)[keyof typeof HOST_ERROR_TYPES];

/** Failure types activities raise (the `type` of an ApplicationFailure). */
export const FAILURE = {
  /** 401/403 from a BMC, or a Secret without username/password. Never retried: a human must fix it. */
  BmcCredentialsRejected: 'BmcCredentialsRejected',
  /** The credentials Secret is missing or malformed. */
  BmcCredentialsMissing: 'BmcCredentialsMissing',
  /** bmc.address cannot be parsed or names an unknown scheme. */
  BmcAddressInvalid: 'BmcAddressInvalid',
  /** The BMC does not offer what was asked (e.g. virtual media over IPMI). */
  BmcUnsupported: 'BmcUnsupported',
  /** 409/503/timeouts/lost sessions: retried with backoff. */
  BmcBusy: 'BmcBusy',
  BmcUnreachable: 'BmcUnreachable',
  /** A power/boot action was accepted but a read-back never showed the new state. */
  BmcActionNotApplied: 'BmcActionNotApplied',
  /** Image checksum mismatch, unreachable image URL. */
  ImageInvalid: 'ImageInvalid',
  /** A disk failed during write or erase: the host goes to maintenance, not back to the pool. */
  DiskFailed: 'DiskFailed',
  /** The agent did not call back within its deadline. */
  AgentTimeout: 'AgentTimeout',
  /** The agent reported a failed command. */
  AgentCommandFailed: 'AgentCommandFailed',
  /** No root device matches rootDeviceHints. */
  NoRootDevice: 'NoRootDevice',
  /** A Kubernetes write lost a race (resourceVersion conflict); retried. */
  KubeConflict: 'KubeConflict',
  /** The spec (or recorded status) cannot be acted on as it is: a human must change it. */
  SpecInvalid: 'SpecInvalid',
  /** The BMC fronts a different machine than the one this host was inspected as. */
  HostIdentityMismatch: 'HostIdentityMismatch',
  /** The user data Secret is missing, malformed, or in another namespace. */
  UserDataMissing: 'UserDataMissing',
  /** The boot MAC is claimed by another host (or a host of another namespace). */
  PxeMacConflict: 'PxeMacConflict',
  /** The plane ended the agent's session (boot script fetched twice, evidence mismatch, ...). */
  AgentSessionInvalidated: 'AgentSessionInvalidated',
} as const;
export type FailureType = (typeof FAILURE)[keyof typeof FAILURE];

/** Failure types that retrying cannot cure. */
export const NON_RETRYABLE_FAILURES: FailureType[] = [
  FAILURE.BmcCredentialsRejected,
  FAILURE.BmcCredentialsMissing,
  FAILURE.BmcAddressInvalid,
  FAILURE.BmcUnsupported,
  FAILURE.ImageInvalid,
  FAILURE.DiskFailed,
  FAILURE.NoRootDevice,
  FAILURE.SpecInvalid,
  FAILURE.HostIdentityMismatch,
  FAILURE.UserDataMissing,
  FAILURE.PxeMacConflict,
];
