/**
 * The real agent script (busybox sh) inspects a simulated server through its
 * synthesized /proc and /sys and reports what the LabServer describes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
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
  lab = await startAgentLab();
  dir = await mkdtemp(join(tmpdir(), 'agent-inspect-'));
});
afterAll(async () => {
  await lab.close();
  await rm(dir, { recursive: true, force: true });
});

test('inspection data matches the synthesized hardware, then the agent powers off', async () => {
  const { exit, reports } = await lab.run({
    host, server, bootId: 'boot-1', dir: join(dir, 'root'),
    script: [{ id: 'c1', type: 'inspect' }, { id: 'c2', type: 'poweroff' }],
  });
  expect(exit.outcome).toBe('poweroff');
  const ok = reports.find((r) => r.commandId === 'c1' && r.status === 'ok');
  expect(ok).toBeDefined();
  const data = (ok as { data: InspectionData }).data;
  expect(data.cpu.count).toBe(6);
  expect(data.cpu.mhz).toBe(2400);
  expect(data.memoryMiB).toBe(3072);
  expect(data.disks).toEqual([
    { name: 'vda', sizeBytes: 64 * 1024 * 1024, serialNumber: 'SN-ROOT-0001', model: 'Fast SSD', vendor: 'QEMU', rotational: false },
    { name: 'vdb', sizeBytes: 128 * 1024 * 1024, serialNumber: 'SN-DATA-0002', model: 'Big HDD "7200"', vendor: 'QEMU', rotational: true },
  ]);
  expect(data.nics).toEqual([{ name: 'eth0', mac: '52:54:00:aa:00:01' }, { name: 'eth1', mac: '52:54:00:aa:00:02' }]);
  expect(data.system).toEqual({ manufacturer: 'Lab Vendor Inc.', productName: 'LV-2000', serialNumber: 'LAB-inspect-1' });
  expect(reports.some((r) => r.commandId === 'c2' && r.type === 'poweroff')).toBe(true);
  // Both commands were finished: nothing is left pending.
  expect(lab.commands.pending(host, 'boot-1')).toBeUndefined();
});

test('an unreachable API: bounded retries with backoff, then the agent gives up (exit 3)', async () => {
  const sysroot = await createSysroot(server, { dir: join(dir, 'down'), apiUrl: 'http://127.0.0.1:1', bootId: 'b' });
  const started = Date.now();
  const exit = await runAgent({ sysroot: sysroot.dir, maxAttempts: 3, timeoutMs: 30_000 });
  expect(exit).toMatchObject({ outcome: 'exited', code: 3 });
  expect(exit.log).toMatch(/retry 1\/3 in 1s[\s\S]*retry 2\/3 in 2s[\s\S]*unreachable after 3 tries/);
  expect(Date.now() - started).toBeGreaterThanOrEqual(3_000);
});

test('an unknown MAC is not retried: 404, exit 3', async () => {
  const stranger = { ...server, nics: [{ name: 'eth0', mac: '52:54:00:77:77:77' }] };
  const sysroot = await createSysroot(stranger, { dir: join(dir, 'stranger'), apiUrl: lab.apiUrl, bootId: 'b' });
  const exit = await runAgent({ sysroot: sysroot.dir, maxAttempts: 5, timeoutMs: 30_000 });
  expect(exit).toMatchObject({ outcome: 'exited', code: 3 });
  expect(exit.log).toContain('knows none of these MACs');
  expect(exit.log).not.toContain('retry');
});

test('a newly prepared boot makes the running agent stop (its token gets 403, exit 4)', async () => {
  const h = { namespace: 'lab', name: 'stale-1' };
  let lookedUp = false;
  const running = lab.run({
    host: h, server: { ...server, nics: [{ name: 'eth0', mac: '52:54:00:aa:00:09' }] }, bootId: 'old', dir: join(dir, 'stale'), script: [],
    onLog: (line) => { if (line.includes('lookup ok')) lookedUp = true; },
  });
  for (let i = 0; i < 100 && !lookedUp; i++) await new Promise((r) => setTimeout(r, 100));
  expect(lookedUp).toBe(true);
  await new Promise((r) => setTimeout(r, 300)); // a few polls with the valid token
  lab.tokens.prepareBoot(h, 'new');
  const { exit } = await running;
  expect(exit).toMatchObject({ outcome: 'exited', code: 4 });
  expect(exit.log).toContain('token is no longer valid');
});
