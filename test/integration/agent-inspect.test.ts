/**
 * The real agent script (busybox sh) inspects a simulated server through its
 * synthesized /proc and /sys and reports what the LabServer describes, with
 * the token it found on the kernel command line of its once-served boot
 * script (test/helpers/agent-lab.ts runs the real provisioning services).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InspectionData } from '../../api/agent';
import type { LabServer } from '../../api/lab';
import { startAgentLab, type AgentLab } from '../helpers/agent-lab';
import { runAgent } from '../../lab/sim/run-agent';
import { createSysroot } from '../../lab/sim/sysroot';

const server: LabServer = {
  name: 'inspect-1', vendor: 'Lab Vendor Inc.', model: 'LV-2000', cpus: 6, memoryMiB: 3072,
  disks: [
    { name: 'vda', sizeGiB: 0.0625, serialNumber: 'SN-ROOT-0001', model: 'Fast SSD', rotational: false },
    { name: 'vdb', sizeGiB: 0.125, serialNumber: 'SN-DATA-0002', model: 'Big HDD "7200"', rotational: true },
  ],
  nics: [{ name: 'eth0', mac: '52:54:00:AA:00:01' }, { name: 'eth1', mac: '52:54:00:aa:00:02' }],
  bmc: { protocol: 'redfish', username: 'u', password: 'p' },
};
const host = { namespace: 'lab', name: 'inspect-1' };

let lab: AgentLab;
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'agent-inspect-'));
  lab = await startAgentLab({ dir: join(dir, 'plane') });
});
afterAll(async () => {
  await lab.close();
  await rm(dir, { recursive: true, force: true });
});

test('inspection data matches the synthesized hardware; the session finishes with it', async () => {
  const { final, bootId } = await lab.run({ host, server, dir: join(dir, 'root'), command: { id: 'c1', type: 'inspect' } });
  expect(final).toMatchObject({ commandId: 'c1', type: 'inspect', status: 'ok' });
  const data = (final as { data: InspectionData }).data;
  expect(data.cpu.count).toBe(6);
  expect(data.cpu.mhz).toBe(2400);
  expect(data.memoryMiB).toBe(3072);
  expect(data.disks).toEqual([
    { name: 'vda', sizeBytes: 64 * 1024 * 1024, serialNumber: 'SN-ROOT-0001', model: 'Fast SSD', vendor: 'QEMU', rotational: false },
    { name: 'vdb', sizeBytes: 128 * 1024 * 1024, serialNumber: 'SN-DATA-0002', model: 'Big HDD "7200"', vendor: 'QEMU', rotational: true },
  ]);
  expect(data.nics).toEqual([{ name: 'eth0', mac: '52:54:00:aa:00:01' }, { name: 'eth1', mac: '52:54:00:aa:00:02' }]);
  expect(data.system).toEqual({ manufacturer: 'Lab Vendor Inc.', productName: 'LV-2000', serialNumber: 'LAB-inspect-1' });
  expect(await lab.activities.getAgentSession({ host, commandId: 'c1' })).toMatchObject({ bootId, state: 'finished', report: { status: 'ok' } });
});

test('a poweroff session: the agent reports and powers the machine off (exit 97 in the lab)', async () => {
  const h = { namespace: 'lab', name: 'off-1' };
  const { exit, final } = await lab.run({ host: h, server: { ...server, name: 'off-1', nics: [{ name: 'eth0', mac: '52:54:00:aa:00:05' }] }, dir: join(dir, 'off'), command: { id: 'off-1', type: 'poweroff' } });
  expect(exit.outcome).toBe('poweroff');
  expect(final).toBeUndefined();
  expect(await lab.activities.getAgentSession({ host: h, commandId: 'off-1' })).toMatchObject({ state: 'finished', report: { status: 'progress', type: 'poweroff' } });
});

test('an unreachable API: bounded retries with backoff, then the agent gives up (exit 3)', async () => {
  const sysroot = await createSysroot(server, { dir: join(dir, 'down'), apiUrl: 'http://127.0.0.1:1', bootId: 'b' });
  await writeFile(join(sysroot.dir, 'proc/cmdline'), `ironflow.api=http://127.0.0.1:1 ironflow.boot=b ironflow.token=${'t'.repeat(43)}\n`);
  const started = Date.now();
  const exit = await runAgent({ sysroot: sysroot.dir, maxAttempts: 3, timeoutMs: 30_000 });
  expect(exit).toMatchObject({ outcome: 'exited', code: 3 });
  expect(exit.log).toMatch(/retry 1\/3 in 1s[\s\S]*retry 2\/3 in 2s[\s\S]*unreachable after 3 tries/);
  expect(Date.now() - started).toBeGreaterThanOrEqual(3_000);
});

test('no token on the kernel command line: the agent stops at once (exit 2) and asks nothing', async () => {
  const sysroot = await createSysroot(server, { dir: join(dir, 'notoken'), apiUrl: lab.apiUrl, bootId: 'b' });
  const exit = await runAgent({ sysroot: sysroot.dir, maxAttempts: 5, timeoutMs: 30_000 });
  expect(exit).toMatchObject({ outcome: 'exited', code: 2 });
  expect(exit.log).toContain('no ironflow.token=');
});

test('a made-up token is refused without retries (401, exit 4)', async () => {
  const sysroot = await createSysroot(server, { dir: join(dir, 'forged'), apiUrl: lab.apiUrl, bootId: 'b' });
  await writeFile(join(sysroot.dir, 'proc/cmdline'), `ironflow.api=${lab.apiUrl} ironflow.boot=b ironflow.token=${'A'.repeat(43)}\n`);
  const exit = await runAgent({ sysroot: sysroot.dir, maxAttempts: 5, timeoutMs: 30_000 });
  expect(exit).toMatchObject({ outcome: 'exited', code: 4 });
  expect(exit.log).toContain('does not know this boot\'s token');
  expect(exit.log).not.toContain('retry');
});

test('a new session for the host makes the idling agent of the old one stop (its token gets 403, exit 4)', async () => {
  const h = { namespace: 'lab', name: 'stale-1' };
  const stale = { ...server, name: 'stale-1', nics: [{ name: 'eth0', mac: '52:54:00:aa:00:09' }] };
  const running = lab.run({ host: h, server: stale, dir: join(dir, 'stale'), command: { id: 'old', type: 'inspect' }, stopAfterFinal: false });
  // The agent finished its one command and idles, polling with its still valid token.
  for (let i = 0; i < 100 && (await lab.activities.getAgentSession({ host: h, commandId: 'old' }))?.state !== 'finished'; i++) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 400));
  await lab.activities.startAgentSession({ host: h, mac: stale.nics[0]!.mac, command: { id: 'new', type: 'inspect' } });
  const { exit } = await running;
  expect(exit).toMatchObject({ outcome: 'exited', code: 4 });
  expect(exit.log).toContain('command poll refused (HTTP 403)');
  expect(await lab.activities.getAgentSession({ host: h, commandId: 'old' })).toMatchObject({ state: 'finished' });
  expect(await lab.activities.getAgentSession({ host: h, commandId: 'new' })).toMatchObject({ state: 'prepared' });
});
