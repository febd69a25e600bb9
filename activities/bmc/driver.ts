import pLimit from 'p-limit';
import type { BmcCredentials, BmcEndpoint } from '../../api/bmc';
import { endpointHostPort } from './address';
import { BmcFailures, type SecretRef } from './errors';
import { IpmiDriver } from './ipmi';
import { RedfishDriver } from './redfish';
import { credentialScrubber } from './scrub';
import type { RequestLimiter } from './redfish-transport';
import type { IronflowBmcDriver } from './types';

export interface ConnectBmcOptions {
  endpoint: BmcEndpoint;
  credentials: BmcCredentials;
  /** The Secret the credentials came from: named in credential errors. */
  secretRef: SecretRef;
  disableCertificateVerification?: boolean;
  /** PEM CAs trusted for Redfish over HTTPS, beside the system CAs. */
  caBundle?: string;
  /** Limit for one request (HTTP exchange or ipmitool run). Default 15 s. */
  timeoutMs?: number;
  /** The ipmitool binary (default: `ipmitool` from PATH). */
  ipmitool?: string;
}

/**
 * Requests in flight per BMC (host:port), across every driver in this worker.
 * BMC web servers are small: iDRAC refuses a 9th session, and many BMCs
 * answer 503 well before that. 4 leaves room for an operator's own tools.
 */
export const DEFAULT_PER_BMC_CONCURRENCY = 4;

const limiters = new Map<string, RequestLimiter>();
let perBmcConcurrency = DEFAULT_PER_BMC_CONCURRENCY;

/** Changes the per-BMC limit for limiters made from now on (worker start-up, tests). */
export function setPerBmcConcurrency(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`per-BMC concurrency must be a positive integer, got ${n}`);
  perBmcConcurrency = n;
  limiters.clear();
}

/** The shared limiter of one BMC (one per host:port, made on first use). */
export function bmcLimiter(endpoint: Pick<BmcEndpoint, 'host' | 'port'>): RequestLimiter {
  const key = endpointHostPort(endpoint);
  let l = limiters.get(key);
  if (!l) {
    const limit = pLimit(perBmcConcurrency);
    l = (fn) => limit(fn);
    limiters.set(key, l);
  }
  return l;
}

/**
 * A driver for the protocol the address names. Connecting does no I/O: the
 * first call authenticates (Redfish session or Basic, IPMI RMCP+ per call).
 * Callers must `close()` it (a Redfish session is held until then). Every
 * failure it throws has had the credential values scrubbed from whatever
 * the BMC or ipmitool said.
 */
export function connectBmc(o: ConnectBmcOptions): IronflowBmcDriver {
  const failures = new BmcFailures(o.endpoint, o.secretRef, credentialScrubber(o.credentials));
  const timeoutMs = o.timeoutMs ?? 15_000;
  const limit = bmcLimiter(o.endpoint);
  if (o.endpoint.protocol === 'ipmi') return new IpmiDriver(o.endpoint, failures, { credentials: o.credentials, timeoutMs, limit, ipmitool: o.ipmitool });
  return new RedfishDriver(o.endpoint, failures, {
    credentials: o.credentials,
    timeoutMs,
    limit,
    disableCertificateVerification: o.disableCertificateVerification,
    caBundle: o.caBundle,
  });
}
export type ConnectBmc = typeof connectBmc;
