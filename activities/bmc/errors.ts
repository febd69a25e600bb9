import { ApplicationFailure } from '@temporalio/common';
import type { BmcEndpoint } from '../../api/bmc';
import { FAILURE, NON_RETRYABLE_FAILURES, type FailureType } from '../../api/errors';
import { endpointHostPort } from './address';
import type { Scrub } from './scrub';

/** Which Secret the credentials came from: named in messages, never its contents. */
export interface SecretRef {
  namespace: string;
  name: string;
}

/**
 * Builds the typed failures every BMC driver throws. Messages name the BMC
 * (host:port as dialled) and, for credentials, the Secret to fix; they never
 * carry a password or a session token. Every `detail` comes from outside
 * (a BMC's answer, ipmitool's output, a library's error) and goes through
 * `scrub`, which removes the credential values in all their spellings: a BMC
 * or a tool that echoes the password cannot put it into a message.
 */
export class BmcFailures {
  constructor(
    private readonly endpoint: BmcEndpoint,
    private readonly secretRef: SecretRef,
    readonly scrub: Scrub = (text) => text,
  ) {}

  get where(): string {
    return `BMC ${endpointHostPort(this.endpoint)}`;
  }

  credentialsRejected(detail: string): ApplicationFailure {
    return this.make(
      FAILURE.BmcCredentialsRejected,
      `${this.where} rejected credentials from Secret ${this.secretRef.namespace}/${this.secretRef.name} (${this.scrub(detail)}); ` +
        'fix the username/password in that Secret',
    );
  }

  /**
   * The Secret's values cannot be used with this BMC at all (a NUL byte in an
   * IPMI password, a password longer than IPMI allows): the Secret must change.
   * `what` names the key and the rule, never the value.
   */
  credentialsUnusable(what: string): ApplicationFailure {
    return this.make(
      FAILURE.BmcCredentialsMissing,
      `${this.where}: the credentials in Secret ${this.secretRef.namespace}/${this.secretRef.name} cannot be used (${what}); fix that key in the Secret`,
    );
  }

  busy(detail: string): ApplicationFailure {
    return this.make(FAILURE.BmcBusy, `${this.where} is busy (${this.scrub(detail)}); retrying`);
  }

  unreachable(detail: string): ApplicationFailure {
    return this.make(FAILURE.BmcUnreachable, `${this.where} (${this.endpoint.address}) is unreachable (${this.scrub(detail)}); retrying`);
  }

  unsupported(detail: string): ApplicationFailure {
    return this.make(FAILURE.BmcUnsupported, `${this.where} does not support ${this.scrub(detail)}`);
  }

  notApplied(detail: string): ApplicationFailure {
    return this.make(FAILURE.BmcActionNotApplied, `${this.where}: ${this.scrub(detail)}`);
  }

  /** A response we did not expect (5xx other than 503, bad JSON): retryable as Busy. */
  protocol(detail: string): ApplicationFailure {
    return this.make(FAILURE.BmcBusy, `${this.where} answered unexpectedly (${this.scrub(detail)})`);
  }

  /**
   * The BMC pointed a link (an `@odata.id`, an action target, a session or
   * task `Location`) at another scheme, host or port. Following it would
   * send the credentials there, so nothing is sent; the BMC's configuration
   * (or whoever answers in its name) must be fixed.
   */
  offOrigin(where: string, link: string): ApplicationFailure {
    return this.own({
      type: FAILURE.BmcUnsupported,
      nonRetryable: true,
      message:
        `${this.where} linked ${where} to ${this.scrub(link).slice(0, 200)}, which is not on ${this.endpoint.scheme}://${endpointHostPort(this.endpoint)}; ` +
        'Ironflow only talks to the BMC at spec.bmc.address and sent nothing there: fix the BMC\'s links (or its proxy), or point spec.bmc.address at the origin it links to',
    });
  }

  /**
   * Rebuilds any error from a driver, a library or Node as a failure whose
   * message has been scrubbed. ApplicationFailures keep their type and
   * retryability; their details and cause (which Temporal would serialise
   * into history) are dropped. Anything else is an unexpected answer
   * (retryable), e.g. redfish-client's own errors.
   */
  sanitize(err: unknown): ApplicationFailure {
    if (err instanceof Error && this.built.has(err)) return err as ApplicationFailure;
    if (isApplicationFailure(err)) {
      return ApplicationFailure.create({ type: err.type ?? undefined, nonRetryable: err.nonRetryable ?? false, message: this.scrub(err.message) });
    }
    return this.protocol((err as Error)?.message ?? String(err));
  }

  /** A certificate that does not verify: retrying cannot cure it, the operator must. */
  untrustedCertificate(code: string): ApplicationFailure {
    return this.own({
      type: FAILURE.BmcUnreachable,
      nonRetryable: true,
      message:
        `${this.where} presented a TLS certificate that does not verify (${code}); give the worker the CA bundle ` +
        'that signed it, or set spec.bmc.disableCertificateVerification: true for this host',
    });
  }

  private make(type: FailureType, message: string): ApplicationFailure {
    return this.own({ type, nonRetryable: NON_RETRYABLE_FAILURES.includes(type), message });
  }

  /** Failures built here: their outside parts are scrubbed already, and the rest (Secret name, host) must stay readable. */
  private readonly built = new WeakSet<Error>();

  private own(o: { type: FailureType; nonRetryable: boolean; message: string }): ApplicationFailure {
    const f = ApplicationFailure.create(o);
    this.built.add(f);
    return f;
  }
}

/** True when `err` is an ApplicationFailure (from any copy of @temporalio/common). */
export function isApplicationFailure(err: unknown): err is ApplicationFailure {
  return err instanceof ApplicationFailure || (err as { name?: string })?.name === 'ApplicationFailure';
}
