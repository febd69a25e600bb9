/**
 * Erase through the real agent script: markers written into the disk image
 * files must be gone afterwards (read from the files, not taken from the
 * report), and the report must say per disk what was done and verified,
 * with the evidence the plane checks (serial, size, the plane's regions
 * read back as zeros) before it accepts the report.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentReport, EraseMode, EraseResult, ExpectedDisk } from '../../api/agent';
import type { LabServer } from '../../api/lab';
import { startAgentLab, type AgentLab } from '../helpers/agent-lab';
import { createSysroot, labDiskBytes } from '../../lab/sim/sysroot';

const server = (name: string, faults: LabServer['faults'] = []): LabServer => ({
  name, vendor: 'Lab', model: 'L1', cpus: 2, memoryMiB: 1024, faults,
  disks: [
    { name: 'vda', sizeGiB: 0.0625, serialNumber: `${name}-A`, rotational: false },
    { name: 'vdb', sizeGiB: 0.03125, serialNumber: `${name}-B`, rotational: true },
  ],
  // One MAC per host: a MAC belongs to the host that claimed it first.
  nics: [{ name: 'eth0', mac: `52:54:00:ee:00:${createHash('sha256').update(name).digest('hex').slice(0, 2)}` }],
  bmc: { protocol: 'ipmi', username: 'u', password: 'p' },
});

/** Where markers go: start, inside the first MiB, middle, inside the last MiB, the very end. */
const markerOffsets = (size: number) => ({
  start: 0, firstMiB: 700 * 1024, middle: Math.floor(size / 2), lastMiB: size - 900 * 1024, end: size - 32,
});
const marker = (disk: string, where: string) => Buffer.from(`IRONFLOW-MARKER ${disk} ${where}`.padEnd(32, '#'));

async function writeMarkers(path: string, disk: string, size: number) {
  const fh = await open(path, 'r+');
  for (const [where, off] of Object.entries(markerOffsets(size))) await fh.write(marker(disk, where), 0, 32, off);
  await fh.close();
}
async function markersLeft(path: string, disk: string, size: number): Promise<string[]> {
  const content = await readFile(path);
  expect(content.length).toBe(size); // the image keeps its size
  return Object.entries(markerOffsets(size))
    .filter(([where, off]) => content.subarray(off, off + 32).equals(marker(disk, where)))
    .map(([where]) => where);
}

const inspected = (srv: LabServer): ExpectedDisk[] => srv.disks.map((d) => ({ name: d.name, serialNumber: d.serialNumber, sizeBytes: labDiskBytes(d.sizeGiB) }));

let lab: AgentLab;
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'agent-erase-'));
  lab = await startAgentLab({ dir: join(dir, 'plane') });
});
afterAll(async () => {
  await lab.close();
  await rm(dir, { recursive: true, force: true });
});

/** Builds the sysroot, writes markers, runs erase + poweroff with the real agent. */
async function erase(name: string, mode: EraseMode, faults: LabServer['faults'] = []) {
  const srv = server(name, faults);
  const host = { namespace: 'lab', name };
  const root = join(dir, name);
  const pre = await createSysroot(srv, { dir: root, apiUrl: lab.apiUrl, bootId: `${name}-boot` });
  for (const d of srv.disks) if (!pre.failingDisks.includes(d.name)) await writeMarkers(pre.diskPaths[d.name]!, d.name, labDiskBytes(d.sizeGiB));
  const run = await lab.run({ host, server: srv, dir: root, keepDisks: true, command: { id: `${name}-erase`, type: 'erase', mode }, inspectedDisks: inspected(srv) });
  return { srv, run, final: run.final as AgentReport };
}

test.each([
  ['metadata', 'metadata', ['middle']],
  ['full', 'overwrite', []],
  ['secure', 'overwrite', []],
] as const)('erase %s removes the markers it must and reports method %s per disk', async (mode, method, survivors) => {
  const { srv, run, final } = await erase(`erase-${mode}`, mode);
  expect(final).toMatchObject({ type: 'erase', status: 'ok' });
  const data = (final as { data: EraseResult }).data;
  expect(data.mode).toBe(mode);
  expect(data.disks.map((d) => [d.disk, d.serialNumber, d.method, d.result, d.verified, d.sizeBytes])).toEqual(
    srv.disks.map((d) => [d.name, d.serialNumber, method, 'ok', true, labDiskBytes(d.sizeGiB)]),
  );
  // The evidence the plane checked: its own regions, read back as zeros.
  const session = lab.sessions.currentSession({ namespace: 'lab', name: `erase-${mode}` })!;
  expect(session.state).toBe('finished');
  for (const rec of data.disks) expect(rec.sampleSha256).toBe(session.expected.zeroSampleSha256?.[rec.disk]);
  for (const rec of data.disks) expect(Date.parse(rec.finishedAt)).toBeGreaterThan(Date.now() - 120_000);
  for (const d of srv.disks) {
    expect(await markersLeft(run.sysroot.diskPaths[d.name]!, d.name, labDiskBytes(d.sizeGiB))).toEqual(survivors);
  }
  if (mode === 'secure') {
    // The lab's disks are files: no device secure erase, and the record says so.
    expect(data.disks[0]!.detail).toMatch(/not a block device.*overwrote with zeros/);
  }
  if (mode !== 'metadata') {
    const progress = run.reports.filter((r) => r.status === 'progress' && r.type === 'erase');
    expect(progress.some((p) => 'percent' in p && p.percent === 100)).toBe(true);
  }
});

test('a disk that fails to write (disk-fail-erase) is named in a failed report; the other disk is erased', async () => {
  const { srv, run, final } = await erase('erase-fault', 'full', [{ fault: 'disk-fail-erase' }]);
  expect(final).toMatchObject({ type: 'erase', status: 'failed', failedDisk: 'vda' });
  expect((final as { message: string }).message).toMatch(/vda.*No space left on device/);
  const vdb = srv.disks[1]!;
  expect(await markersLeft(run.sysroot.diskPaths.vdb!, 'vdb', labDiskBytes(vdb.sizeGiB))).toEqual([]);
});

test('a big lab disk (4 GiB) is erased without filling the lab machine: the image stays sparse', async () => {
  const name = 'erase-big';
  const srv: LabServer = { ...server(name), disks: [{ name: 'vda', sizeGiB: 4, serialNumber: 'BIG-1' }] };
  const root = join(dir, name);
  const size = labDiskBytes(4);
  const pre = await createSysroot(srv, { dir: root, apiUrl: lab.apiUrl, bootId: `${name}-boot` });
  await writeMarkers(pre.diskPaths.vda!, 'vda', size);
  const run = await lab.run({ host: { namespace: 'lab', name }, server: srv, dir: root, keepDisks: true, command: { id: 'big-erase', type: 'erase', mode: 'full' }, inspectedDisks: inspected(srv) });
  const final = run.final;
  expect(final).toMatchObject({ status: 'ok', data: { disks: [{ disk: 'vda', serialNumber: 'BIG-1', method: 'overwrite', result: 'ok', verified: true, sizeBytes: size }] } });
  const st = await stat(pre.diskPaths.vda!);
  expect(st.size).toBe(size);
  expect(st.blocks * 512).toBeLessThan(1024 * 1024);
  const fh = await open(pre.diskPaths.vda!, 'r');
  for (const off of Object.values(markerOffsets(size))) {
    const buf = Buffer.alloc(32);
    await fh.read(buf, 0, 32, off);
    expect(buf.every((b) => b === 0)).toBe(true);
  }
  await fh.close();
});

test('the agent erases the inspected disks by serial, even when their kernel names changed, and no other disk', async () => {
  const name = 'erase-renamed';
  const srv = server(name);
  // Inspection saw vda=A and vdb=B; this boot enumerates them the other way round, plus a new disk vdc.
  const now: LabServer = {
    ...srv,
    disks: [
      { name: 'vda', sizeGiB: 0.03125, serialNumber: `${name}-B`, rotational: true },
      { name: 'vdb', sizeGiB: 0.0625, serialNumber: `${name}-A`, rotational: false },
      { name: 'vdc', sizeGiB: 0.03125, serialNumber: `${name}-NEW`, rotational: false },
    ],
  };
  const root = join(dir, name);
  const pre = await createSysroot(now, { dir: root, apiUrl: lab.apiUrl, bootId: 'x' });
  for (const d of now.disks) await writeMarkers(pre.diskPaths[d.name]!, d.name, labDiskBytes(d.sizeGiB));
  const run = await lab.run({ host: { namespace: 'lab', name }, server: now, dir: root, keepDisks: true, command: { id: `${name}-erase`, type: 'erase', mode: 'full' }, inspectedDisks: inspected(srv) });
  expect(run.final).toMatchObject({ status: 'ok' });
  expect((run.final as { data: EraseResult }).data.disks.map((d) => [d.disk, d.serialNumber])).toEqual([['vdb', `${name}-A`], ['vda', `${name}-B`]]);
  expect(await markersLeft(pre.diskPaths.vda!, 'vda', labDiskBytes(0.03125))).toEqual([]);
  expect(await markersLeft(pre.diskPaths.vdb!, 'vdb', labDiskBytes(0.0625))).toEqual([]);
  // The disk inspection never saw is untouched.
  expect(await markersLeft(pre.diskPaths.vdc!, 'vdc', labDiskBytes(0.03125))).toEqual(Object.keys(markerOffsets(labDiskBytes(0.03125))));
});

test('an inspected disk that changed size is not erased: a failed report names it; the host must not return to the pool', async () => {
  const name = 'erase-resized';
  const srv = server(name);
  const now: LabServer = { ...srv, disks: [srv.disks[0]!, { ...srv.disks[1]!, sizeGiB: 0.046875 }] };
  const root = join(dir, name);
  const pre = await createSysroot(now, { dir: root, apiUrl: lab.apiUrl, bootId: 'x' });
  await writeMarkers(pre.diskPaths.vdb!, 'vdb', labDiskBytes(0.046875));
  const run = await lab.run({ host: { namespace: 'lab', name }, server: now, dir: root, keepDisks: true, command: { id: `${name}-erase`, type: 'erase', mode: 'full' }, inspectedDisks: inspected(srv) });
  expect(run.final).toMatchObject({ status: 'failed', failedDisk: 'vdb' });
  expect((run.final as { message: string }).message).toContain(`vdb (serial ${name}-B) is ${labDiskBytes(0.046875)} bytes, inspection recorded ${labDiskBytes(0.03125)}: not erased`);
  expect((await markersLeft(pre.diskPaths.vdb!, 'vdb', labDiskBytes(0.046875))).length).toBe(5);
});

test('an erase without inspected disks is refused by the plane: it could not check what the agent erased', async () => {
  await expect(lab.activities.startAgentSession({ host: { namespace: 'lab', name: 'never-inspected' }, mac: '52:54:00:ee:ff:01', command: { id: 'e0', type: 'erase', mode: 'full' } }))
    .rejects.toMatchObject({ type: 'SpecInvalid', nonRetryable: true, message: expect.stringContaining('needs the inspected disks') });
});
