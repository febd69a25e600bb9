/**
 * Everything of a command that reaches the agent's shell is checked here,
 * in the plane, before a session starts (issue 13: "inputs bounded before
 * they reach a shell"). The agent parses its command with sed and does its
 * arithmetic in 64-bit shell integers, so numbers must be whole and small
 * enough, and strings must not carry quotes, backslashes or control
 * characters (they would end a JSON string early for sed, or change what a
 * shell comparison means).
 *
 * Each refusal is a sentence that names the field and says what is allowed;
 * the values named are the operator's own spec, never anything an agent sent.
 */
import type { AgentCommand, ExpectedDisk, RootDeviceHints } from '../../api/agent';

/** Largest minSizeGigabytes accepted: 2^20 GiB = 1 PiB. */
export const MAX_MIN_SIZE_GIB = 2 ** 20;
/** Largest byte size accepted anywhere (a disk, an image): 2^53, exact in JSON numbers and far inside 64-bit shell arithmetic. */
export const MAX_BYTES = Number.MAX_SAFE_INTEGER;

export class CommandRefused extends Error {
  override name = 'CommandRefused';
}

const PRINTABLE = /^[\x20-\x7e]*$/;
const COMMAND_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const DISK_NAME = /^[A-Za-z0-9_-]{1,32}$/;
const DEVICE_NAME = /^(\/dev\/)?[A-Za-z0-9._:/+-]{1,255}$/;
const HCTL = /^\d{1,4}:\d{1,4}:\d{1,4}:\d{1,4}$/;
const HEX = { sha256: /^[0-9a-fA-F]{64}$/, sha512: /^[0-9a-fA-F]{128}$/ } as const;

const describe = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v) : typeof v === 'number' ? String(v) : typeof v);

/** A string the agent reads with sed and compares in sh: printable ASCII, no quote, backslash or '|'. */
function checkText(field: string, v: unknown, max = 255): void {
  if (typeof v !== 'string') throw new CommandRefused(`${field} must be a string, not ${describe(v)}`);
  if (v.length > max) throw new CommandRefused(`${field} is ${v.length} characters long; at most ${max}`);
  if (!PRINTABLE.test(v) || /["\\|]/.test(v)) throw new CommandRefused(`${field} ${describe(v)} has characters the agent cannot take (control characters, '"', '\\' or '|')`);
}

/** Metal3 rootDeviceHints, refused at the first value out of bounds. */
export function checkRootDeviceHints(h: unknown, field = 'rootDeviceHints'): RootDeviceHints | undefined {
  if (h === undefined || h === null) return undefined;
  if (typeof h !== 'object' || Array.isArray(h)) throw new CommandRefused(`${field} must be an object`);
  const hints = h as Record<string, unknown>;
  const known = ['deviceName', 'hctl', 'model', 'vendor', 'serialNumber', 'minSizeGigabytes', 'wwn', 'rotational'];
  for (const k of Object.keys(hints)) if (!known.includes(k)) throw new CommandRefused(`${field} has no field ${describe(k)}; known: ${known.join(', ')}`);
  const out: RootDeviceHints = {};
  if (hints.minSizeGigabytes !== undefined) {
    const v = hints.minSizeGigabytes;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_MIN_SIZE_GIB) {
      throw new CommandRefused(`${field}.minSizeGigabytes must be a whole number of GiB from 0 to ${MAX_MIN_SIZE_GIB} (1 PiB), not ${describe(v)}`);
    }
    out.minSizeGigabytes = v;
  }
  if (hints.rotational !== undefined) {
    if (typeof hints.rotational !== 'boolean') throw new CommandRefused(`${field}.rotational must be true or false, not ${describe(hints.rotational)}`);
    out.rotational = hints.rotational;
  }
  if (hints.deviceName !== undefined) {
    checkText(`${field}.deviceName`, hints.deviceName);
    if (!DEVICE_NAME.test(hints.deviceName as string)) throw new CommandRefused(`${field}.deviceName must look like /dev/sda or sda (letters, digits, . _ : / + -)`);
    out.deviceName = hints.deviceName as string;
  }
  if (hints.hctl !== undefined) {
    if (typeof hints.hctl !== 'string' || !HCTL.test(hints.hctl)) throw new CommandRefused(`${field}.hctl must look like 0:0:0:0 (four numbers up to 4 digits), not ${describe(hints.hctl)}`);
    out.hctl = hints.hctl;
  }
  for (const k of ['model', 'vendor', 'serialNumber', 'wwn'] as const) {
    if (hints[k] === undefined) continue;
    checkText(`${field}.${k}`, hints[k]);
    out[k] = hints[k] as string;
  }
  return out;
}

/** Inspected disks as erase/deploy checks use them. */
export function checkExpectedDisks(disks: unknown, field = 'inspectedDisks'): ExpectedDisk[] {
  if (!Array.isArray(disks)) throw new CommandRefused(`${field} must be a list of disks`);
  if (disks.length > 256) throw new CommandRefused(`${field} has ${disks.length} disks; at most 256`);
  return disks.map((d: unknown, i) => {
    const disk = d as Partial<ExpectedDisk> | undefined;
    if (typeof disk?.name !== 'string' || !DISK_NAME.test(disk.name)) throw new CommandRefused(`${field}[${i}].name must be a kernel disk name (e.g. sda, nvme0n1), not ${describe(disk?.name)}`);
    checkText(`${field}[${i}].serialNumber`, disk.serialNumber ?? '');
    const size = disk.sizeBytes;
    if (typeof size !== 'number' || !Number.isInteger(size) || size <= 0 || size > MAX_BYTES) throw new CommandRefused(`${field}[${i}].sizeBytes must be a whole number of bytes from 1 to 2^53, not ${describe(size)}`);
    // Key order matters: the agent reads {"name":..,"serialNumber":..,"sizeBytes":..} with one sed pattern.
    return { name: disk.name, serialNumber: disk.serialNumber ?? '', sizeBytes: size };
  });
}

/** The command as the agent will get it, minus what the plane adds (verify, disks). */
export function checkCommand(c: AgentCommand): AgentCommand {
  if (typeof c?.id !== 'string' || !COMMAND_ID.test(c.id)) throw new CommandRefused(`command id must be 1-128 characters of A-Z a-z 0-9 . _ : -, not ${describe(c?.id)}`);
  switch (c.type) {
    case 'inspect':
    case 'poweroff':
    case 'none':
      return { id: c.id, type: c.type };
    case 'deploy': {
      checkText('image.url', c.imageUrl, 2048);
      let u: URL;
      try {
        u = new URL(c.imageUrl);
      } catch {
        throw new CommandRefused('image.url is not a URL (expected e.g. http://10.99.0.1:8080/files/os.img)');
      }
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new CommandRefused(`image.url must be http or https, not ${u.protocol.replace(':', '')}`);
      if (/\s/.test(c.imageUrl)) throw new CommandRefused('image.url must not contain spaces');
      if (c.checksumType !== 'sha256' && c.checksumType !== 'sha512') throw new CommandRefused(`image.checksumType must be sha256 or sha512 for the agent, not ${describe(c.checksumType)}`);
      if (typeof c.checksum !== 'string' || !HEX[c.checksumType].test(c.checksum)) throw new CommandRefused(`image.checksum must be ${c.checksumType === 'sha256' ? 64 : 128} hex digits (${c.checksumType})`);
      const hints = checkRootDeviceHints(c.rootDeviceHints);
      return {
        id: c.id, type: 'deploy', imageUrl: c.imageUrl, checksum: c.checksum.toLowerCase(), checksumType: c.checksumType,
        ...(hints ? { rootDeviceHints: hints } : {}), hasUserData: c.hasUserData === true,
      };
    }
    case 'erase':
      if (c.mode !== 'metadata' && c.mode !== 'full' && c.mode !== 'secure') throw new CommandRefused(`erase mode must be metadata, full or secure, not ${describe(c.mode)}`);
      return { id: c.id, type: 'erase', mode: c.mode };
    default:
      throw new CommandRefused(`unknown command type ${describe((c as { type?: unknown }).type)}`);
  }
}
