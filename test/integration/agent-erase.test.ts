/**
 * Erase through the real agent script: markers written into the disk image
 * files must be gone afterwards (read from the files, not taken from the
 * report), and the report must say per disk what was done and verified.
 */
import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentReport, EraseMode, EraseResult } from '../../api/agent';
import type { LabServer } from '../../api/lab';
import { startAgentLab, type AgentLab } from '../helpers/agent-lab';
import { createSysroot, labDiskBytes } from '../../lab/sim/sysroot';

const server = (name: string, faults: LabServer['faults'] = []): LabServer => ({
  name, vendor: 'Lab', model: 'L1', cpus: 2, memoryMiB: 1024, faults,
  disks: [
    { name: 'vda', sizeGiB: 0.0625, serialNumber: `${name}-A`, rotational: false },
    { name: 'vdb', sizeGiB: 0.03125, serialNumber: `${name}-B`, rotational: true },
  ],
  nics: [{ name: 'eth0', mac: `52:54:00:ee:00:0${name.length % 10}` }],
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

let lab: AgentLab;
let dir: string;
beforeAll(async () => {
  lab = await startAgentLab();
  dir = await mkdtemp(join(tmpdir(), 'agent-erase-'));
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
  const run = await lab.run({
    host, server: srv, bootId: `${name}-boot`, dir: root, keepDisks: true,
    script: [{ id: `${name}-erase`, type: 'erase', mode }, { id: `${name}-off`, type: 'poweroff' }],
  });
  expect(run.exit.outcome).toBe('poweroff');
  const final = run.reports.find((r) => r.commandId === `${name}-erase` && r.status !== 'progress');
  return { srv, run, final: final as AgentReport };
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
  expect(data.disks.map((d) => [d.disk, d.serialNumber, d.method, d.result, d.verified])).toEqual(
    srv.disks.map((d) => [d.name, d.serialNumber, method, 'ok', true]),
  );
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
  const run = await lab.run({
    host: { namespace: 'lab', name }, server: srv, bootId: `${name}-boot`, dir: root, keepDisks: true,
    script: [{ id: 'big-erase', type: 'erase', mode: 'full' }, { id: 'big-off', type: 'poweroff' }],
  });
  const final = run.reports.find((r) => r.commandId === 'big-erase' && r.status !== 'progress');
  expect(final).toMatchObject({ status: 'ok', data: { disks: [{ disk: 'vda', serialNumber: 'BIG-1', method: 'overwrite', result: 'ok', verified: true }] } });
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
