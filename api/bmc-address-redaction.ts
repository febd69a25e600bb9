/**
 * A BareMetalHost's `spec.bmc.address` is copied into places many people
 * read: the workflow input (the host observation), the IronflowBmcAddress
 * search attribute, the host status, logs and error messages. Credentials
 * belong in the Secret, and an address that carries them
 * (`redfish://admin:pw@10.0.0.5/...`, `ipmi://u:p@h`) is refused; these two
 * functions let every process keep such an address's userinfo out of all of
 * those places before it refuses it.
 */

/** What replaces the userinfo of an address: still refused as "contains credentials", never the secret. */
export const REDACTED_BMC_USERINFO = 'REDACTED';

/** The `scheme://` prefix of a Metal3 BMC address (absent for a bare IPMI host). */
const SCHEME_PREFIX = /^[a-z][a-z0-9+.-]*:\/\//i;

/**
 * True when the address carries userinfo. Any `@` counts: a password may hold
 * `/`, `?` or `#`, which would end a URL's authority early and hide the `@`
 * from a URL parser, and no Metal3 BMC address needs an `@` anywhere else.
 *
 * Examples: `redfish://u:p@10.0.0.5` → true; `ipmi://u:p/q@h` → true;
 * `redfish+http://127.0.0.1:8000/redfish/v1/Systems/1` → false.
 */
export function bmcAddressHasCredentials(address: string): boolean {
  return address.includes('@');
}

/**
 * The address with everything between `scheme://` (or the start, for a bare
 * host) and the last `@` replaced by {@link REDACTED_BMC_USERINFO}. Pure and
 * total: an address without `@` comes back unchanged, so callers can apply it
 * to every address they show or store.
 *
 * Examples:
 * - `redfish://admin:s3cret@10.0.0.5/redfish/v1/Systems/1` → `redfish://REDACTED@10.0.0.5/redfish/v1/Systems/1`
 * - `ipmi://u:p@ss/w#rd@10.0.0.6:623` → `ipmi://REDACTED@10.0.0.6:623` (the last `@` ends the userinfo)
 * - `admin:pw@10.0.0.7` → `REDACTED@10.0.0.7`
 * - `ipmi://10.0.0.6` → unchanged
 *
 * The result still contains an `@`, so Ironflow still refuses it with
 * BmcAddressInvalid: redaction never turns a bad address into a working one.
 */
export function redactBmcAddress(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 0) return address;
  const start = SCHEME_PREFIX.exec(address)?.[0].length ?? 0;
  // A scheme prefix holds no '@', so the userinfo starts at `start` and ends at `at`.
  return `${address.slice(0, start)}${REDACTED_BMC_USERINFO}@${address.slice(at + 1)}`;
}
