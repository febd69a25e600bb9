/**
 * The provisioning network's URL and file layout, shared by the PXE services,
 * the agent, the lab's simulated servers and the host workflow.
 *
 *   DHCP (dnsmasq)  -> iPXE: boot http://<provisioning-ip>:<http-port>/boot.ipxe
 *   GET /boot.ipxe                    chains to the per-MAC script below
 *   GET /boot/<mac>.ipxe              per-MAC script (mac lower-case, '-' separated),
 *                                     404 for unknown MACs (which are reported for discovery)
 *   GET /files/<name>                 kernel, initramfs, images (HTTP, range requests)
 *   TFTP <name>                       the same files under the TFTP root (read-only)
 *   /v1/agent/...                     the agent API (api/agent.ts)
 */
export const PXE_PATHS = {
  chainScript: '/boot.ipxe',
  macScript: (mac: string) => `/boot/${normalizeMac(mac).replace(/:/g, '-')}.ipxe`,
  file: (name: string) => `/files/${name}`,
} as const;

/** Names of the agent ramdisk files inside the TFTP root / HTTP /files/. */
export const AGENT_BOOT_FILES = {
  kernel: 'ironflow-agent.vmlinuz',
  initramfs: 'ironflow-agent.initramfs',
} as const;

/**
 * Kernel command-line keys the agent reads (/proc/cmdline). The token rides
 * on the command line of a per-boot iPXE script that is served ONCE (a second
 * fetch invalidates the boot); it is never handed out on request.
 */
export const AGENT_CMDLINE = {
  /** The session's agent token (per host, boot and command). */
  token: 'ironflow.token',
  /** Base URL of Ironflow's provisioning HTTP server, e.g. http://10.99.0.1:8080 */
  api: 'ironflow.api',
  /** Boot id issued by prepareBoot, so a stale agent of an older boot is recognisable. */
  bootId: 'ironflow.boot',
} as const;

/** What a host should boot into when it PXE-boots next. */
export type BootMode = 'agent' | 'disk' | 'none';

export function normalizeMac(mac: string): string {
  const hex = mac.toLowerCase().replace(/[^0-9a-f]/g, '');
  if (hex.length !== 12) throw new Error(`"${mac}" is not a MAC address (expected 6 bytes, e.g. 52:54:00:12:34:56)`);
  return hex.match(/../g)!.join(':');
}
