/**
 * The evidence a deploy or erase report must carry (activities/agent/evidence.ts):
 * where the plane's verify regions may lie, and which reports are refused,
 * with sentences that name the plane's facts and never the client's values.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import type { AgentCommand, DeployResult, EraseResult, ExpectedDisk } from '../../api/agent';
import { checkDeployEvidence, checkEraseEvidence, chooseEraseRegions, chooseImageRegions, metadataEdge, zeroSampleSha256 } from '../../activities/agent/evidence';
import type { SessionRecord } from '../../activities/agent/session-state';

const MiB = 1024 * 1024;

describe('verify regions', () => {
  it('of an image: the first 64 KiB and three more, sector-aligned, all inside the image (any size up to 1 TiB)', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 2 ** 40 }), (size) => {
      const { regions } = chooseImageRegions(size);
      expect(regions).toHaveLength(4);
      expect(regions[0]).toEqual({ offset: 0, length: Math.min(65536, size) });
      for (const r of regions) {
        expect(r.offset % 512).toBe(0);
        expect(r.offset + r.length).toBeLessThanOrEqual(size);
        expect(r.length).toBe(Math.min(65536, size));
      }
    }));
    expect(chooseImageRegions(0)).toEqual({ regions: [] });
  });

  it('of a metadata erase: only inside the first and last metadataEdge bytes, which that mode wipes', () => {
    fc.assert(fc.property(fc.integer({ min: 2, max: 2 ** 31 }).map((sectors) => sectors * 512), (size) => {
      const edge = metadataEdge(size);
      const { regions } = chooseEraseRegions({ name: 'sda', serialNumber: 'S', sizeBytes: size }, 'metadata');
      for (const r of regions) {
        const inFirst = r.offset + r.length <= edge;
        const inLast = r.offset >= size - edge && r.offset + r.length <= size;
        expect(inFirst || inLast).toBe(true);
        expect(r.offset % 512).toBe(0);
      }
      expect(regions[regions.length - 1]!.offset + regions[regions.length - 1]!.length).toBe(size);
    }));
    expect(metadataEdge(64 * MiB)).toBe(MiB);
    expect(metadataEdge(MiB)).toBe(512 * 1024);
  });

  it('of a full erase: anywhere on the disk, the first 64 KiB always', () => {
    const { regions } = chooseEraseRegions({ name: 'sda', serialNumber: 'S', sizeBytes: 64 * MiB }, 'full', () => 0);
    expect(regions[0]).toEqual({ offset: 0, length: 65536 });
    const spread = chooseEraseRegions({ name: 'sda', serialNumber: 'S', sizeBytes: 64 * MiB }, 'full', (max) => max - 1);
    expect(spread.regions[3]).toEqual({ offset: 64 * MiB - 65536, length: 65536 });
  });

  it('zeros hash like the bytes they stand for', () => {
    const v = { regions: [{ offset: 0, length: 1000 }, { offset: 4096, length: 24 }] };
    expect(zeroSampleSha256(v)).toBe(createHash('sha256').update(Buffer.alloc(1024)).digest('hex'));
  });
});

const disks: ExpectedDisk[] = [
  { name: 'vda', serialNumber: 'SER-A', sizeBytes: 64 * MiB },
  { name: 'vdb', serialNumber: '', sizeBytes: 32 * MiB },
];
const session = (command: AgentCommand, expected: SessionRecord['expected'], inspectedDisks = disks): SessionRecord => ({
  bootId: 'b', command, state: 'running', preparedAt: '', expected, inspectedDisks, progressSignals: 0, evidenceMismatches: 0,
});

describe('deploy evidence', () => {
  const cmd: AgentCommand = { id: 'd', type: 'deploy', imageUrl: 'http://x/i', checksum: 'a'.repeat(64), checksumType: 'sha256', hasUserData: false, verify: { regions: [{ offset: 0, length: 512 }] } };
  const s = session(cmd, { imageSampleSha256: 'b'.repeat(64), imageBytes: 4096 });
  const good: DeployResult = { rootDevice: '/dev/vda', rootDeviceSerial: 'SER-A', rootDeviceSizeBytes: 64 * MiB, sampleSha256: 'b'.repeat(64), bytesWritten: 4096, checksumType: 'sha256', checksum: 'A'.repeat(64), userDataWritten: false };

  it('accepts the report whose disk, size, checksum and regions all match', () => {
    expect(checkDeployEvidence(s, good)).toBeUndefined();
    // A disk inspection saw without a serial is matched by name.
    expect(checkDeployEvidence(s, { ...good, rootDevice: '/dev/vdb', rootDeviceSerial: '', rootDeviceSizeBytes: 32 * MiB })).toBeUndefined();
  });

  it.each<[string, Partial<DeployResult>, RegExp]>([
    ['another checksum', { checksum: 'c'.repeat(64) }, /not the image's sha256 a{64}/],
    ['another size written', { bytesWritten: 1 }, /bytesWritten is not the image's size \(4096 bytes\)/],
    ['no evidence at all', { rootDeviceSerial: undefined, rootDeviceSizeBytes: undefined }, /carries no evidence/],
    ['a serial inspection never saw', { rootDeviceSerial: 'FORGED' }, /none of the inspected disks \(vda serial SER-A, vdb serial \(none\)\)/],
    ['another size of the disk', { rootDeviceSizeBytes: 1 }, /not the 67108864 bytes inspection recorded for vda/],
    ['regions that are not the image (an all-zero disk)', { sampleSha256: createHash('sha256').update(Buffer.alloc(512)).digest('hex') }, /verify regions read back .* not the image's/],
    ['no regions read', { sampleSha256: undefined }, /verify regions/],
  ])('refuses %s, naming what the plane expected and never the value sent', (_label, change, why) => {
    const problem = checkDeployEvidence(s, { ...good, ...change });
    expect(problem).toMatch(why);
    expect(problem).not.toContain('FORGED');
  });
});

describe('erase evidence', () => {
  const verify = { vda: { regions: [{ offset: 0, length: 4096 }] }, vdb: { regions: [{ offset: 0, length: 8192 }] } };
  const zeros = { vda: zeroSampleSha256(verify.vda), vdb: zeroSampleSha256(verify.vdb) };
  const s = session({ id: 'e', type: 'erase', mode: 'full', disks, verify }, { zeroSampleSha256: zeros });
  const rec = (over: Partial<EraseResult['disks'][number]> = {}) => ({ disk: 'vda', serialNumber: 'SER-A', method: 'overwrite' as const, result: 'ok' as const, verified: true, sizeBytes: 64 * MiB, sampleSha256: zeros.vda, finishedAt: '2026-01-01T00:00:00Z', ...over });
  const good: EraseResult = { mode: 'full', disks: [rec(), rec({ disk: 'vdb', serialNumber: '', sizeBytes: 32 * MiB, sampleSha256: zeros.vdb })] };

  it('accepts a report that proves every inspected disk erased (found by serial, whatever its kernel name now)', () => {
    expect(checkEraseEvidence(s, good)).toBeUndefined();
    expect(checkEraseEvidence(s, { ...good, disks: [rec({ disk: 'sdz' }), good.disks[1]!] })).toBeUndefined();
  });

  it.each<[string, EraseResult, RegExp]>([
    ['another mode', { ...good, mode: 'metadata' }, /mode is not the command's \(full\)/],
    ['the wrong disk serial', { ...good, disks: [rec({ serialNumber: 'FORGED' }), good.disks[1]!] }, /no erase record for disk vda \(serial SER-A\): the disk serial does not match inspection/],
    ['a disk left out', { ...good, disks: [good.disks[0]!] }, /no erase record for disk vdb \(serial \(none\)\)/],
    ['a disk twice', { ...good, disks: [rec(), rec(), good.disks[1]!] }, /more than one erase record for disk vda/],
    ['a disk not verified', { ...good, disks: [rec({ verified: false }), good.disks[1]!] }, /disk vda \(serial SER-A\) is not reported erased and verified/],
    ['another size', { ...good, disks: [rec({ sizeBytes: 1 }), good.disks[1]!] }, /size is not the 67108864 bytes/],
    ['regions that are not zeros', { ...good, disks: [rec({ sampleSha256: 'f'.repeat(64) }), good.disks[1]!] }, /not all zeros/],
    ['a record for a disk never inspected', { ...good, disks: [...good.disks, rec({ disk: 'vdc', serialNumber: 'OTHER' })] }, /a disk that was not to be erased/],
  ])('refuses %s', (_label, data, why) => {
    const problem = checkEraseEvidence(s, data);
    expect(problem).toMatch(why);
    expect(problem).not.toContain('FORGED');
  });
});
