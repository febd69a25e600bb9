/**
 * Deploy through the real agent script: the image is served over HTTP on
 * loopback, streamed by busybox wget onto the disk image file the root
 * device hints select, verified by reading back, and user data lands in the
 * documented region (last MiB of the root device).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import type { AgentCommand, AgentReport, DeployResult, RootDeviceHints } from '../../api/agent';
import type { LabServer } from '../../api/lab';
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
  nics: [{ name: 'eth0', mac: '52:54:00:de:00:01' }],
  bmc: { protocol: 'redfish', username: 'u', password: 'p' },
});

let lab: AgentLab;
let files: FastifyInstance;
let imageUrl: string;
let dir: string;
let n = 0;
beforeAll(async () => {
  lab = await startAgentLab();
  files = Fastify();
  files.get('/files/image.raw', async (_req, reply) => reply.type('application/octet-stream').send(image));
  await files.listen({ host: '127.0.0.1', port: 0 });
  imageUrl = `http://127.0.0.1:${(files.server.address() as AddressInfo).port}/files/image.raw`;
  dir = await mkdtemp(join(tmpdir(), 'agent-deploy-'));
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
  const run = await lab.run({
    host: { namespace: 'lab', name }, server: srv, bootId: `${name}-boot`, dir: join(dir, name), userData: opts.userData,
    script: [command, { id: `${name}-off`, type: 'poweroff' }],
  });
  expect(run.exit.outcome).toBe('poweroff');
  const final = run.reports.find((r) => r.commandId === command.id && r.status !== 'progress') as AgentReport;
  return { ...run, final };
}

test('the correct sha256: the smallest disk that fits gets the image, read back and reported', async () => {
  const { final, sysroot, reports } = await deploy({});
  expect(final).toMatchObject({ status: 'ok', type: 'deploy' });
  const data = (final as { data: DeployResult }).data;
  expect(data).toEqual({ rootDevice: '/dev/vdb', bytesWritten: image.length, checksumType: 'sha256', checksum: sha256, userDataWritten: false });
  const disk = await readFile(sysroot.diskPaths.vdb!);
  expect(disk.length).toBe(32 * MiB);
  expect(disk.subarray(0, image.length).equals(image)).toBe(true);
  // The other disks were not touched.
  expect((await readFile(sysroot.diskPaths.vda!)).every((b) => b === 0)).toBe(true);
  const percents = reports.filter((r) => r.status === 'progress').map((r) => (r as { percent?: number }).percent);
  expect(percents).toEqual(expect.arrayContaining([0, 90]));
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

test('an image URL that answers 404: failed report without the URL query (pre-signed credentials)', async () => {
  const { final } = await deploy({ imageUrl: imageUrl.replace('image.raw', 'missing.raw?X-Amz-Signature=s3cr3t') });
  expect(final).toMatchObject({ status: 'failed', type: 'deploy' });
  expect(final).not.toHaveProperty('failedDisk');
  const message = (final as { message: string }).message;
  expect(message).toMatch(/could not download the image http:\/\/127\.0\.0\.1:\d+\/files\/missing\.raw: .*404/);
  expect(message).not.toContain('s3cr3t');
});
