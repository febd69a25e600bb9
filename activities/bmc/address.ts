import { ApplicationFailure } from '@temporalio/common';
import type { BmcEndpoint } from '../../api/bmc';
import { bmcAddressHasCredentials, redactBmcAddress } from '../../api/bmc-address-redaction';
import { FAILURE } from '../../api/errors';

type SchemeInfo = Pick<BmcEndpoint, 'protocol' | 'vendor' | 'scheme'>;

/**
 * The `spec.bmc.address` schemes Ironflow accepts, in Metal3's spelling
 * (metal3-io/baremetal-operator pkg/hardwareutils/bmc). A bare `redfish://`
 * means HTTPS, as in Metal3; `+http` is for lab BMCs and emulators only.
 */
const SCHEMES: Record<string, SchemeInfo> = {
  redfish: { protocol: 'redfish', vendor: 'generic', scheme: 'https' },
  'redfish+https': { protocol: 'redfish', vendor: 'generic', scheme: 'https' },
  'redfish+http': { protocol: 'redfish', vendor: 'generic', scheme: 'http' },
  'idrac-redfish': { protocol: 'redfish', vendor: 'idrac', scheme: 'https' },
  'idrac-redfish+https': { protocol: 'redfish', vendor: 'idrac', scheme: 'https' },
  'idrac-redfish+http': { protocol: 'redfish', vendor: 'idrac', scheme: 'http' },
  'ilo5-redfish': { protocol: 'redfish', vendor: 'ilo5', scheme: 'https' },
  'ilo5-redfish+https': { protocol: 'redfish', vendor: 'ilo5', scheme: 'https' },
  'ilo5-redfish+http': { protocol: 'redfish', vendor: 'ilo5', scheme: 'http' },
  ipmi: { protocol: 'ipmi', vendor: 'generic', scheme: 'https' },
};

/** The IANA port of RMCP / RMCP+ (IPMI over LAN). */
export const IPMI_DEFAULT_PORT = 623;

/** Accepted schemes, for error messages and docs. */
export const ACCEPTED_BMC_SCHEMES = Object.keys(SCHEMES).map((s) => `${s}://`);

/** The message quotes the address with any userinfo redacted: it lands in status, history and logs. */
function invalid(address: string, why: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: FAILURE.BmcAddressInvalid,
    nonRetryable: true,
    message:
      `BMC address "${redactBmcAddress(address)}" ${why}; accepted: ${ACCEPTED_BMC_SCHEMES.join(', ')} ` +
      `(e.g. redfish://10.0.0.5/redfish/v1/Systems/1, ipmi://10.0.0.6:623) or a bare host for IPMI`,
  });
}

/**
 * Parses a BareMetalHost `spec.bmc.address` into the endpoint a driver dials.
 *
 * Examples:
 * - `redfish://10.0.0.5/redfish/v1/Systems/1` → https, port 443, systemPath `/redfish/v1/Systems/1`
 * - `redfish+http://127.0.0.1:8000/redfish/v1/Systems/abc` → http, port 8000
 * - `ipmi://10.0.0.6` → IPMI port 623; `10.0.0.6:6230` (bare) → IPMI port 6230
 */
export function parseBmcAddress(address: string): BmcEndpoint {
  const trimmed = address.trim();
  if (!trimmed) throw invalid(address, 'is empty');
  // Checked before any URL parsing: a password holding '/', '?' or '#' would
  // make a URL parser see a different host, and its error would quote it.
  if (bmcAddressHasCredentials(trimmed)) {
    throw invalid(address, 'contains "@" (user:password@ is not accepted: put the credentials in the Secret named by spec.bmc.credentialsName)');
  }
  const m = /^([a-z0-9+.-]+):\/\/(.*)$/i.exec(trimmed);
  // No scheme: Metal3 treats a bare host[:port] as IPMI.
  const schemeName = m ? m[1]!.toLowerCase() : 'ipmi';
  const info = SCHEMES[schemeName];
  if (!info) throw invalid(address, `has the unknown scheme "${schemeName}://"`);

  let url: URL;
  try {
    // Any special scheme makes WHATWG URL parse host, port and path the same way for all of them.
    url = new URL(`http://${m ? m[2] : trimmed}`);
  } catch {
    throw invalid(address, 'is not a valid URL');
  }
  if (!url.hostname) throw invalid(address, 'has no host');
  // URL drops the default port 80 of http:; recover an explicit ":80".
  const explicitPort = url.port ? Number(url.port) : /:80(\/|$)/.test(m ? m[2]! : trimmed) ? 80 : undefined;
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;

  if (info.protocol === 'ipmi') {
    if (url.pathname !== '/' && url.pathname !== '') throw invalid(address, 'has a path, which IPMI addresses cannot have');
    return { ...info, host, port: explicitPort ?? IPMI_DEFAULT_PORT, systemPath: '', address };
  }
  const systemPath = url.pathname === '/' ? '' : url.pathname.replace(/\/+$/, '');
  if (systemPath && !systemPath.startsWith('/redfish/v1/')) {
    throw invalid(address, `has the path "${systemPath}", expected a Redfish system path like /redfish/v1/Systems/1`);
  }
  return { ...info, host, port: explicitPort ?? (info.scheme === 'https' ? 443 : 80), systemPath, address };
}

/** `host:port` as shown in messages and used as the concurrency key (IPv6 in brackets). */
export function endpointHostPort(e: Pick<BmcEndpoint, 'host' | 'port'>): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}
