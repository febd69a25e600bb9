/**
 * Evidence that a deploy or erase really happened on the inspected disk:
 * the plane picks a few random 64 KiB regions when it starts the session
 * (api/agent.ts VerifyRegions), knows what they must hash to (the image's
 * bytes after a deploy, zeros after an erase), and the agent reads them back
 * from the disk and reports sha256 over them, with the disk's serial and size.
 * A report whose evidence does not match is refused before it reaches the
 * workflow (the token alone does not make a forged "provisioned" or "erased").
 *
 * Limits, said plainly: whoever holds the session's token also sees the
 * regions (they are in the command), and images are served on the
 * provisioning network, so a forger who has the token AND fetches the image
 * could compute the hash. The evidence makes a report prove which disk was
 * written and that the bytes are there on that disk as the agent read them;
 * the token (served once, bound to host, boot and command) is what keeps
 * forgers out.
 *
 * Sentences returned here name only what the plane expected, never a value
 * the client sent (nothing a client sends is echoed).
 */
import { createHash, randomInt } from 'node:crypto';
import type { DeployResult, EraseMode, EraseResult, ExpectedDisk, VerifyRegions } from '../../api/agent';
import type { SessionRecord } from './session-state';

export const VERIFY_REGION_BYTES = 64 * 1024;
export const VERIFY_REGION_COUNT = 4;
const SECTOR = 512;
const MiB = 1024 * 1024;

export type Random = (exclusiveMax: number) => number;
const defaultRandom: Random = (max) => (max <= 1 ? 0 : randomInt(max));

/**
 * What a metadata erase wipes at each end of a disk (agent/lib/erase.sh):
 * 1 MiB, or half the disk rounded down to a sector below 2 MiB.
 * Example: 64 MiB -> 1048576; 1 MiB disk -> 524288.
 */
export function metadataEdge(sizeBytes: number): number {
  return sizeBytes < 2 * MiB ? Math.floor(sizeBytes / 2 / SECTOR) * SECTOR : MiB;
}

/** A sector-aligned offset in [lo, hi] (lo aligned). Example: lo 0, hi 1000 -> 0 or 512. */
function alignedBetween(lo: number, hi: number, random: Random): number {
  if (hi <= lo) return lo;
  return lo + SECTOR * random(Math.floor((hi - lo) / SECTOR) + 1);
}

const sorted = (regions: VerifyRegions['regions']): VerifyRegions => ({
  regions: [...regions].sort((a, b) => a.offset - b.offset).map((r) => ({ offset: r.offset, length: r.length })),
});

/**
 * Regions of a deployed image: its first 64 KiB (the partition table) and
 * three more at random inside the image. Example: a 3 MiB image ->
 * {0,65536}, and three 65536-byte regions at sector offsets below 3 MiB - 64 KiB.
 */
export function chooseImageRegions(imageBytes: number, random: Random = defaultRandom): VerifyRegions {
  const len = Math.min(VERIFY_REGION_BYTES, imageBytes);
  if (len <= 0) return { regions: [] };
  const regions = [{ offset: 0, length: len }];
  for (let i = 1; i < VERIFY_REGION_COUNT; i++) regions.push({ offset: alignedBetween(0, imageBytes - len, random), length: len });
  return sorted(regions);
}

/**
 * Regions of a disk after an erase. full/secure: anywhere on the disk (the
 * first 64 KiB always). metadata: only inside what that mode wipes (the
 * first and last metadataEdge bytes), the very first and very last 64 KiB
 * always. Example: metadata on 64 MiB -> {0}, one in [0, 1 MiB), one in
 * [63 MiB, 64 MiB), {64 MiB - 64 KiB}.
 */
export function chooseEraseRegions(disk: ExpectedDisk, mode: EraseMode, random: Random = defaultRandom): VerifyRegions {
  const size = disk.sizeBytes;
  if (mode === 'metadata') {
    const edge = metadataEdge(size);
    const len = Math.min(VERIFY_REGION_BYTES, edge);
    if (len <= 0) return { regions: [] };
    return sorted([
      { offset: 0, length: len },
      { offset: alignedBetween(0, edge - len, random), length: len },
      { offset: alignedBetween(size - edge, size - len, random), length: len },
      { offset: size - len, length: len },
    ]);
  }
  const len = Math.min(VERIFY_REGION_BYTES, size);
  if (len <= 0) return { regions: [] };
  const regions = [{ offset: 0, length: len }];
  for (let i = 1; i < VERIFY_REGION_COUNT; i++) regions.push({ offset: alignedBetween(0, size - len, random), length: len });
  return sorted(regions);
}

/** sha256 of the zeros the regions must read back after an erase. */
export function zeroSampleSha256(v: VerifyRegions): string {
  const h = createHash('sha256');
  for (const r of v.regions) h.update(Buffer.alloc(r.length));
  return h.digest('hex');
}

/** The inspected disk a record or root device stands for: by serial, or by name when inspection saw no serial. */
function findDisk(disks: ExpectedDisk[], serial: string | undefined, name: string | undefined): ExpectedDisk | undefined {
  if (serial) return disks.find((d) => d.serialNumber === serial);
  return disks.find((d) => !d.serialNumber && d.name === name);
}

/** Why a deploy result is refused, or undefined when its evidence holds. */
export function checkDeployEvidence(session: SessionRecord, data: DeployResult): string | undefined {
  const cmd = session.command;
  if (cmd.type !== 'deploy') return 'the session is not a deploy';
  if (data.checksumType !== cmd.checksumType || data.checksum.toLowerCase() !== cmd.checksum.toLowerCase()) {
    return `the reported checksum is not the image's ${cmd.checksumType} ${cmd.checksum.toLowerCase()}`;
  }
  const exp = session.expected;
  if (exp.imageBytes !== undefined && data.bytesWritten !== exp.imageBytes) return `bytesWritten is not the image's size (${exp.imageBytes} bytes)`;
  if (data.rootDeviceSerial === undefined || data.rootDeviceSizeBytes === undefined) {
    return 'the report carries no evidence (rootDeviceSerial and rootDeviceSizeBytes are required)';
  }
  const disks = session.inspectedDisks;
  if (disks?.length) {
    const disk = findDisk(disks, data.rootDeviceSerial, data.rootDevice.replace(/^\/dev\//, ''));
    if (!disk) return `the root device is none of the inspected disks (${disks.map((d) => `${d.name} serial ${d.serialNumber || '(none)'}`).join(', ')})`;
    if (data.rootDeviceSizeBytes !== disk.sizeBytes) return `the root device's size is not the ${disk.sizeBytes} bytes inspection recorded for ${disk.name} (serial ${disk.serialNumber || '(none)'})`;
  }
  if (exp.imageSampleSha256 !== undefined && data.sampleSha256 !== exp.imageSampleSha256) {
    return `the sha256 of the verify regions read back from the root device is not the image's (${cmd.verify?.regions.length ?? 0} regions)`;
  }
  return undefined;
}

/** Why an erase result is refused, or undefined when every inspected disk proves its erase. */
export function checkEraseEvidence(session: SessionRecord, data: EraseResult): string | undefined {
  const cmd = session.command;
  if (cmd.type !== 'erase') return 'the session is not an erase';
  if (data.mode !== cmd.mode) return `the reported mode is not the command's (${cmd.mode})`;
  const disks = cmd.disks ?? [];
  const zeros = session.expected.zeroSampleSha256 ?? {};
  for (const d of disks) {
    const who = `disk ${d.name} (serial ${d.serialNumber || '(none)'})`;
    const matching = data.disks.filter((r) => (d.serialNumber ? r.serialNumber === d.serialNumber : !r.serialNumber && r.disk === d.name));
    if (matching.length !== 1) return matching.length === 0 ? `no erase record for ${who}: the disk serial does not match inspection` : `more than one erase record for ${who}`;
    const rec = matching[0]!;
    if (rec.result !== 'ok' || !rec.verified) return `${who} is not reported erased and verified`;
    if (rec.sizeBytes !== d.sizeBytes) return `${who}: the size is not the ${d.sizeBytes} bytes inspection recorded`;
    const want = zeros[d.name];
    if (want !== undefined && rec.sampleSha256 !== want) return `${who}: the verify regions read back are not all zeros`;
  }
  for (const rec of data.disks) {
    if (!findDisk(disks, rec.serialNumber, rec.disk)) return `the report has a record for a disk that was not to be erased (the inspected disks are ${disks.map((d) => d.name).join(', ')})`;
  }
  return undefined;
}
