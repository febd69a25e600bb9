/**
 * Deploy through the real agent script: the image is served over HTTP on
 * loopback, streamed by busybox wget onto the disk image file the root
 * device hints select, verified by reading back, and user data lands in the
 * documented region (last MiB of the root device).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import type { AgentCommand, DeployResult, ExpectedDisk, RootDeviceHints } from '../../api/agent';
import type { LabServer } from '../../api/lab';
import { runAgent } from '../../lab/sim/run-agent';
import { createSysroot, labDiskBytes } from '../../lab/sim/sysroot';
import { startAgentLab, type AgentLab } from '../helpers/agent-lab';

const MiB = 1024 * 1024;
// Not a whole number of MiB: the last dd block is partial.
const image = randomBytes(3 * MiB + 12345);
const sha256 = createHash('sha256').update(image).digest('hex');
const sha512 = createHash('sha512').update(image).digest('hex');

const server = (name: string, faults: LabServer['faults'] = []): LabServer => ({
  name, vendor: 'Lab', model: 'L1', cpus: 2, memoryMiB: 1024, faults,
  disks: [
    { name: 'vda', sizeGiB: 0.0625, serialNumber: 'SER-A', model: 'Fast SSD', rotational: false },
    { name: 'vdb', sizeGiB: 0.03125, serialNumber: 'SER-B', model: 'Spinning HDD', rotational: true },
    { name: 'vdc', sizeGiB: 0.046875, serialNumber: 'SER-C', model: 'Fast SSD', rotational: false },
  ],
  // One MAC per host: a MAC belongs to the host that claimed it first.
  nics: [{ name: 'eth0', mac: `52:54:00:de:00:${createHash('sha256').update(name).digest('hex').slice(0, 2)}` }],
  bmc: { protocol: 'redfish', username: 'u', password: 'p' },
});

/** memcmp against zeros: Buffer.every over 100 MiB takes seconds. */
const allZero = (b: Buffer) => b.equals(Buffer.alloc(b.length));
const inspected = (srv: LabServer): ExpectedDisk[] => srv.disks.map((d) => ({ name: d.name, serialNumber: d.serialNumber, sizeBytes: labDiskBytes(d.sizeGiB) }));

let lab: AgentLab;
let files: FastifyInstance;
let imageUrl: string;
let dir: string;
let n = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'agent-deploy-'));
  lab = await startAgentLab({ dir: join(dir, 'plane') });
  // A remote image server without Range support (fastify sends the buffer whole): the plane reads it once from the start.
  files = Fastify();
  files.get('/files/image.raw', async (_req, reply) => reply.type('application/octet-stream').send(image));
  await files.listen({ host: '127.0.0.1', port: 0 });
  imageUrl = `http://127.0.0.1:${(files.server.address() as AddressInfo).port}/files/image.raw`;
});
afterAll(async () => {
  await lab.close();
  await files.close();
  await rm(dir, { recursive: true, force: true });
});

async function deploy(cmd: Partial<Extract<AgentCommand, { type: 'deploy' }>>, opts: { faults?: LabServer['faults']; userData?: Buffer } = {}) {
  const name = `deploy-${++n}`;
  const srv = server(name, opts.faults);
  const command: AgentCommand = {
    id: `${name}-deploy`, type: 'deploy', imageUrl, checksum: sha256, checksumType: 'sha256', hasUserData: !!opts.userData, ...cmd,
  };
  const run = await lab.run({ host: { namespace: 'lab', name }, server: srv, dir: join(dir, name), userData: opts.userData, command, inspectedDisks: inspected(srv) });
  return run;
}

test('the correct sha256: the smallest disk that fits gets the image, read back and reported', async () => {
  const { final, sysroot, reports } = await deploy({});
  expect(final).toMatchObject({ status: 'ok', type: 'deploy' });
  const data = (final as { data: DeployResult }).data;
  expect(data).toEqual({
    rootDevice: '/dev/vdb', rootDeviceSerial: 'SER-B', rootDeviceSizeBytes: 32 * MiB, sampleSha256: expect.stringMatching(/^[0-9a-f]{64}$/),
    bytesWritten: image.length, checksumType: 'sha256', checksum: sha256, userDataWritten: false,
  });
  const disk = await readFile(sysroot.diskPaths.vdb!);
  expect(disk.length).toBe(32 * MiB);
  expect(disk.subarray(0, image.length).equals(image)).toBe(true);
  // The other disks were not touched.
  expect(allZero(await readFile(sysroot.diskPaths.vda!))).toBe(true);
  // Progress is coalesced in the plane (here: a signal as soon as the previous one is out); what arrives is in order.
  const percents = reports.filter((r) => r.status === 'progress').map((r) => (r as { percent?: number }).percent ?? -1);
  expect(percents.length).toBeGreaterThan(0);
  expect([...percents].sort((a, b) => a - b)).toEqual(percents);
});

test('sha512 and user data: the header and bytes sit in the last MiB of the root device', async () => {
  const userData = Buffer.from('#cloud-config\nhostname: lab-node\n');
  const { final, sysroot } = await deploy({ checksum: sha512.toUpperCase(), checksumType: 'sha512', rootDeviceHints: { serialNumber: 'SER-A' } }, { userData });
  expect(final).toMatchObject({ status: 'ok', data: { rootDevice: '/dev/vda', checksum: sha512, checksumType: 'sha512', userDataWritten: true } });
  const disk = await readFile(sysroot.diskPaths.vda!);
  expect(disk.subarray(0, image.length).equals(image)).toBe(true);
  const region = disk.subarray(disk.length - MiB);
  const header = `IRONFLOW-USERDATA 1 ${userData.length} ${createHash('sha256').update(userData).digest('hex')}\n`;
  expect(region.subarray(0, header.length).toString()).toBe(header);
  expect(region.subarray(512, 512 + userData.length).equals(userData)).toBe(true);
  // User data did not stay in the lab's temporary directory.
  expect(JSON.stringify(final)).not.toContain('hostname');
});

test.each<[string, RootDeviceHints, string]>([
  ['serialNumber', { serialNumber: 'SER-C' }, 'vdc'],
  ['deviceName', { deviceName: '/dev/vda' }, 'vda'],
  ['rotational false picks the smallest SSD', { rotational: false }, 'vdc'],
  ['model substring', { model: 'Spinning' }, 'vdb'],
])('root device hint %s selects the right disk', async (_label, hints, expected) => {
  const { final, sysroot } = await deploy({ rootDeviceHints: hints });
  expect(final).toMatchObject({ status: 'ok', data: { rootDevice: `/dev/${expected}` } });
  const disk = await readFile(sysroot.diskPaths[expected]!);
  expect(disk.subarray(0, image.length).equals(image)).toBe(true);
});

test('a wrong checksum gives a failed report and leaves no bootable partition table', async () => {
  const wrong = 'ab'.repeat(32);
  const { final, sysroot } = await deploy({ checksum: wrong });
  expect(final).toMatchObject({ status: 'failed', type: 'deploy' });
  expect((final as { message: string }).message).toContain(`checksum mismatch on /dev/vdb: expected sha256 ${wrong}, read back ${sha256}`);
  const disk = await readFile(sysroot.diskPaths.vdb!);
  expect(disk.subarray(0, MiB).every((b) => b === 0)).toBe(true);
});

test('no disk matches the hints: failed report listing the disks', async () => {
  const { final } = await deploy({ rootDeviceHints: { serialNumber: 'NOPE' } });
  expect(final).toMatchObject({ status: 'failed' });
  expect((final as { message: string }).message).toMatch(/no disk matches rootDeviceHints.*vda\(67108864 bytes, serial SER-A\)/);
});

test('disk-fail-write: the write error is reported with the failed disk', async () => {
  const { final } = await deploy({ rootDeviceHints: { serialNumber: 'SER-C' } }, { faults: [{ fault: 'disk-fail-write' }] });
  expect(final).toMatchObject({ status: 'failed', failedDisk: 'vdc' });
  expect((final as { message: string }).message).toMatch(/I\/O error writing \/dev\/vdc/);
});

test('an image URL that answers 404: the plane refuses the session before any boot, naming the URL without its query', async () => {
  const host = { namespace: 'lab', name: 'deploy-404' };
  const err = await lab.activities
    .startAgentSession({ host, mac: '52:54:00:de:04:04', command: { id: 'd404', type: 'deploy', imageUrl: imageUrl.replace('image.raw', 'missing.raw?X-Amz-Signature=s3cr3t'), checksum: sha256, checksumType: 'sha256', hasUserData: false } })
    .catch((e: unknown) => e as { type: string; nonRetryable: boolean; message: string });
  expect(err).toMatchObject({ type: 'ImageInvalid', nonRetryable: false });
  expect((err as { message: string }).message).toMatch(/could not read image http:\/\/127\.0\.0\.1:\d+\/files\/missing\.raw: HTTP 404/);
  expect((err as { message: string }).message).not.toContain('s3cr3t');
  expect(lab.sessions.currentSession(host)).toBeUndefined();
});

test('an image in the plane\'s own files folder: evidence read from the file, the deploy accepted', async () => {
  await writeFile(join(lab.filesDir, 'local.raw'), image);
  const { final, sysroot } = await deploy({ imageUrl: `${lab.apiUrl}/files/local.raw` });
  expect(final).toMatchObject({ status: 'ok', data: { rootDevice: '/dev/vdb', bytesWritten: image.length } });
  expect((await readFile(sysroot.diskPaths.vdb!)).subarray(0, image.length).equals(image)).toBe(true);
});

describe('rootDeviceHints bounds: absurd numbers never reach the agent, and the agent\'s own arithmetic is safe', () => {
  test.each<[string, unknown]>([
    ['ten billion GiB (overflowed the old agent and matched every disk)', 10_000_000_000],
    ['one more than 2^20', 2 ** 20 + 1],
    ['negative', -1],
    ['fractional', 1.5],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['a string', '10'],
    ['2^63', 2 ** 63],
  ])('minSizeGigabytes %s is refused by the plane with a clear error', async (_label, value) => {
    const host = { namespace: 'lab', name: `hint-${++n}` };
    const err = await lab.activities
      .startAgentSession({ host, mac: `52:54:00:de:0a:${(n % 256).toString(16).padStart(2, '0')}`, command: { id: `h${n}`, type: 'deploy', imageUrl, checksum: sha256, checksumType: 'sha256', hasUserData: false, rootDeviceHints: { minSizeGigabytes: value as number } } })
      .catch((e: unknown) => e as { type: string; nonRetryable: boolean; message: string });
    expect(err).toMatchObject({ type: 'SpecInvalid', nonRetryable: true });
    expect((err as { message: string }).message).toContain('rootDeviceHints.minSizeGigabytes must be a whole number of GiB from 0 to 1048576');
    expect(lab.sessions.currentSession(host)).toBeUndefined();
  });

  test.each<[string, RootDeviceHints]>([
    ['hctl with 5-digit numbers', { hctl: '99999:0:0:0' }],
    ['a serial with a quote', { serialNumber: 'a"b' }],
    ['a model with a newline', { model: 'x\ny' }],
    ['rotational as a string', { rotational: 'yes' as unknown as boolean }],
  ])('%s is refused by the plane', async (_label, hints) => {
    const host = { namespace: 'lab', name: `hint-${++n}` };
    await expect(lab.activities.startAgentSession({ host, mac: `52:54:00:de:0b:${(n % 256).toString(16).padStart(2, '0')}`, command: { id: `h${n}`, type: 'deploy', imageUrl, checksum: sha256, checksumType: 'sha256', hasUserData: false, rootDeviceHints: hints } }))
      .rejects.toMatchObject({ type: 'SpecInvalid', nonRetryable: true });
  });

  test('the largest accepted minSizeGigabytes (2^20 GiB) matches no lab disk: a clear failed report, no disk written', async () => {
    const { final, sysroot } = await deploy({ rootDeviceHints: { minSizeGigabytes: 2 ** 20 } });
    expect(final).toMatchObject({ status: 'failed', type: 'deploy' });
    expect((final as { message: string }).message).toMatch(/^no disk matches rootDeviceHints \{"minSizeGigabytes":1048576\}/);
    for (const p of Object.values(sysroot.diskPaths)) expect(allZero(await readFile(p))).toBe(true);
  });

  test('an absurd value that bypasses the plane (written straight into the store) still matches nothing in the agent', async () => {
    const name = `deploy-${++n}`;
    const srv = server(name);
    const host = { namespace: 'lab', name };
    // What an older plane or a bug could hand the agent: the shell must not overflow and match every disk.
    await lab.sessions.startSession(host, srv.nics[0]!.mac, {
      command: { id: `${name}-d`, type: 'deploy', imageUrl, checksum: sha256, checksumType: 'sha256', hasUserData: false, rootDeviceHints: { minSizeGigabytes: 10_000_000_000 } },
      expected: {},
    });
    const sysroot = await createSysroot(srv, { dir: join(dir, name), apiUrl: lab.apiUrl, bootId: 'x' });
    const script = await lab.fetchBootScript(srv.nics[0]!.mac);
    await writeFile(join(sysroot.dir, 'proc/cmdline'), `${script.cmdline}\n`);
    const ac = new AbortController();
    const watch = setInterval(() => { if (lab.sessions.currentSession(host)?.state === 'finished') ac.abort(); }, 50);
    await runAgent({ sysroot: sysroot.dir, signal: ac.signal, timeoutMs: 30_000 }).finally(() => clearInterval(watch));
    expect(lab.sessions.currentSession(host)?.report).toMatchObject({ status: 'failed', message: expect.stringContaining('larger than any disk') });
    for (const p of Object.values(sysroot.diskPaths)) expect(allZero(await readFile(p))).toBe(true);
  });
});
