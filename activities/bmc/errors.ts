import { ApplicationFailure } from '@temporalio/common';
import type { BmcEndpoint } from '../../api/bmc';
import { FAILURE, NON_RETRYABLE_FAILURES, type FailureType } from '../../api/errors';
import { endpointHostPort } from './address';

/** Which Secret the credentials came from: named in messages, never its contents. */
export interface SecretRef {
  namespace: string;
  name: string;
}

/**
 * Builds the typed failures every BMC driver throws. Messages name the BMC
 * (host:port as dialled) and, for credentials, the Secret to fix; they never
 * carry a password or a session token.
 */
export class BmcFailures {
  constructor(
    private readonly endpoint: BmcEndpoint,
    private readonly secretRef: SecretRef,
  ) {}

  get where(): string {
    return `BMC ${endpointHostPort(this.endpoint)}`;
  }

  credentialsRejected(detail: string): ApplicationFailure {
    return this.make(
      FAILURE.BmcCredentialsRejected,
      `${this.where} rejected credentials from Secret ${this.secretRef.namespace}/${this.secretRef.name} (${detail}); ` +
        'fix the username/password in that Secret',
    );
  }

  busy(detail: string): ApplicationFailure {
    return this.make(FAILURE.BmcBusy, `${this.where} is busy (${detail}); retrying`);
  }

  unreachable(detail: string): ApplicationFailure {
    return this.make(FAILURE.BmcUnreachable, `${this.where} (${this.endpoint.address}) is unreachable (${detail})`);
  }

  unsupported(detail: string): ApplicationFailure {
    return this.make(FAILURE.BmcUnsupported, `${this.where} does not support ${detail}`);
  }

  notApplied(detail: string): ApplicationFailure {
    return this.make(FAILURE.BmcActionNotApplied, `${this.where}: ${detail}`);
  }

  /** A response we did not expect (5xx other than 503, bad JSON): retryable as Busy. */
  protocol(detail: string): ApplicationFailure {
    return this.make(FAILURE.BmcBusy, `${this.where} answered unexpectedly (${detail})`);
  }

  /** A certificate that does not verify: retrying cannot cure it, the operator must. */
  untrustedCertificate(code: string): ApplicationFailure {
    return ApplicationFailure.create({
      type: FAILURE.BmcUnreachable,
      nonRetryable: true,
      message:
        `${this.where} presented a TLS certificate that does not verify (${code}); give the worker the CA bundle ` +
        'that signed it, or set spec.bmc.disableCertificateVerification: true for this host',
    });
  }

  private make(type: FailureType, message: string): ApplicationFailure {
    return ApplicationFailure.create({ type, nonRetryable: NON_RETRYABLE_FAILURES.includes(type), message });
  }
}

/** True when `err` is an ApplicationFailure (from any copy of @temporalio/common). */
export function isApplicationFailure(err: unknown): err is ApplicationFailure {
  return err instanceof ApplicationFailure || (err as { name?: string })?.name === 'ApplicationFailure';
}
