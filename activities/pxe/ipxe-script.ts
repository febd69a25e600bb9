/**
 * The iPXE scripts Ironflow serves (layout in api/pxe.ts):
 *
 *   /boot.ipxe          every iPXE client gets it from DHCP; it chains to the
 *                       per-MAC script using iPXE's own `${mac:hexhyp}`, and
 *                       on 404 (unknown MAC) exits so the firmware tries its
 *                       next boot device.
 *   /boot/<mac>.ipxe    'agent': kernel + initramfs over HTTP with the agent's
 *                       command line, its token included (served once, see
 *                       activities/agent/session-store.ts); 'disk': boot the
 *                       local disk; 'none': exit.
 *
 * Everything interpolated into a script is checked first: a script is code
 * the server runs, and a newline or `${...}` smuggled in through a kernel
 * argument would change what it does.
 */
import { AGENT_BOOT_FILES, AGENT_CMDLINE, PXE_PATHS } from '../../api/pxe';
import type { HostRef } from '../../api/host';
import type { BootRecord } from '../agent/session-state';

/** How often the per-boot script tries to fetch the agent's kernel and initramfs before it gives up. */
export const AGENT_FETCH_TRIES = 5;

/** Kernel arguments the agent always gets, after Ironflow's own keys. */
export const AGENT_BASE_ARGS = ['console=tty0', 'console=ttyS0,115200n8', 'panic=30'] as const;

const SAFE_ARG = /^[A-Za-z0-9_.,:=/+@%-]+$/;
const SAFE_ID = /^[A-Za-z0-9._-]+$/;

/** The base URL without a trailing '/', checked to be a plain http(s) URL. */
export function checkBaseUrl(baseUrl: string): string {
  let u: URL;
  // The URL parser silently drops tabs and newlines; refuse them rather than serve a different URL than configured.
  if (/[\s\x00-\x1f]/.test(baseUrl)) throw new Error(`provisioning base URL ${JSON.stringify(baseUrl)} contains whitespace or control characters`);
  try {
    u = new URL(baseUrl);
  } catch {
    throw new Error(`provisioning base URL "${baseUrl}" is not a URL (expected e.g. http://10.99.0.1:8080)`);
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.search || u.hash || u.username || !SAFE_ARG.test(u.href)) {
    throw new Error(`provisioning base URL "${baseUrl}" must be a plain http(s) URL without query, credentials or spaces`);
  }
  return u.href.replace(/\/+$/, '');
}

export function checkKernelArgs(args: readonly string[]): string[] {
  for (const a of args) {
    if (!SAFE_ARG.test(a)) {
      throw new Error(`kernel argument ${JSON.stringify(a)} has characters iPXE would interpret; use only A-Z a-z 0-9 _ . , : = / + @ % -`);
    }
  }
  return [...args];
}

/** The script DHCP points every iPXE client at. */
export function renderChainScript(opts: { baseUrl: string }): string {
  const base = checkBaseUrl(opts.baseUrl);
  return [
    '#!ipxe',
    '# Ironflow: fetch this machine\'s own script; unknown machines fall through to the next boot device.',
    `chain --autofree ${base}/boot/\${mac:hexhyp}.ipxe || goto unknown`,
    ':unknown',
    'echo Ironflow has no boot entry for ${mac} (reported for discovery); trying the next boot device',
    'exit 1',
    '',
  ].join('\n');
}

/** A TOKEN is base64url (32 random bytes -> 43 characters). */
const TOKEN = /^[A-Za-z0-9_-]{16,128}$/;

/** The per-MAC script for a registered machine; an agent boot needs its token. */
export function renderHostScript(opts: { entry: BootRecord & { host: HostRef }; baseUrl: string; token?: string }): string {
  const { entry } = opts;
  const base = checkBaseUrl(opts.baseUrl);
  const header = ['#!ipxe', `# Ironflow: ${entry.host.namespace}/${entry.host.name} mode ${entry.mode}`];
  if (!SAFE_ID.test(entry.host.namespace) || !SAFE_ID.test(entry.host.name)) {
    throw new Error(`host ${JSON.stringify(entry.host)} has characters not allowed in a Kubernetes name`);
  }
  switch (entry.mode) {
    case 'agent': {
      if (!SAFE_ID.test(entry.bootId)) throw new Error(`boot id ${JSON.stringify(entry.bootId)} must match ${SAFE_ID.source}`);
      // Never echo the value: it is a secret even when malformed.
      if (!opts.token || !TOKEN.test(opts.token)) throw new Error(`the agent boot ${entry.bootId} needs its token (base64url) to render its script`);
      const kernelUrl = base + PXE_PATHS.file(AGENT_BOOT_FILES.kernel);
      const initrdUrl = base + PXE_PATHS.file(AGENT_BOOT_FILES.initramfs);
      const cmdline = [
        // initrd=<name> lets an EFI stub kernel find the initramfs iPXE registered under that name.
        `initrd=${AGENT_BOOT_FILES.initramfs}`,
        `${AGENT_CMDLINE.api}=${base}`,
        `${AGENT_CMDLINE.bootId}=${entry.bootId}`,
        `${AGENT_CMDLINE.token}=${opts.token}`,
        ...AGENT_BASE_ARGS,
        ...checkKernelArgs(entry.kernelArgs),
      ].join(' ');
      return [
        ...header,
        `# boot ${entry.bootId}`,
        // This script is served once (its token would leak to a second fetch), so a lost kernel or
        // initramfs transfer is retried here, as Ironic's boot script does, not by fetching the script again.
        `set tries:int32 0`,
        ':fetch',
        `kernel ${kernelUrl} ${cmdline} || goto retry`,
        `initrd ${initrdUrl} || goto retry`,
        'boot || goto failed',
        ':retry',
        'imgfree',
        'inc tries',
        `iseq \${tries} ${AGENT_FETCH_TRIES} && goto failed ||`,
        'echo Ironflow: fetching the agent failed (try ${tries}); retrying',
        'sleep ${tries}',
        'goto fetch',
        ':failed',
        // Retrying is the workflow's job (it power-cycles on its own deadline); exiting keeps the machine from hanging here.
        'echo Ironflow: could not fetch or start the agent; exiting to the next boot device',
        'exit 1',
        '',
      ].join('\n');
    }
    case 'disk':
      return [
        ...header,
        // BIOS: sanboot the first hard disk. UEFI has no drive 0x80; exiting hands back to the firmware, which boots the disk next.
        'iseq ${platform} pcbios || exit',
        'sanboot --no-describe --drive 0x80 || exit',
        '',
      ].join('\n');
    case 'none':
      return [...header, 'exit 1', ''].join('\n');
  }
}
