/**
 * Boots the built agent ramdisk in QEMU (TCG, user-mode network: the guest
 * reaches the host's loopback as 10.0.2.2) and drives it through the real
 * agent API: inspect, erase (metadata), deploy with user data, poweroff.
 * A manual check for the initramfs; the lab's QEMU servers come later.
 *
 *   agent/build-initramfs.sh /tmp/agent-out
 *   npm run build && node dist/agent/qemu-smoke.js /tmp/agent-out
 */
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdtemp, open, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import type { AddressInfo } from 'node:net';
import type { AgentCommand } from '../api/agent';
import { AGENT_BOOT_FILES } from '../api/pxe';
import { startAgentLab } from '../lab/sim/agent-lab';

async function main(outDir: string): Promise<number> {
  const started = Date.now();
  const work = await mkdtemp(join(tmpdir(), 'agent-qemu-'));
  const image = randomBytes(2 * 1024 * 1024 + 777);
  const files = Fastify();
  files.get('/image.raw', async (_q, reply) => reply.send(image));
  await files.listen({ host: '127.0.0.1', port: 0 });
  const filesPort = (files.server.address() as AddressInfo).port;

  const lab = await startAgentLab({ pollIntervalSeconds: 1 });
  const host = { namespace: 'lab', name: 'qemu-smoke' };
  const mac = '52:54:00:12:34:56';
  lab.addServer(host, { name: host.name, vendor: 'QEMU', model: 'pc', cpus: 1, memoryMiB: 512, disks: [], nics: [{ name: 'eth0', mac }], bmc: { protocol: 'ipmi', username: '-', password: '-' } }, 'smoke-boot');
  const disk = join(work, 'disk.img');
  await writeFile(disk, '');
  const fh = await open(disk, 'r+');
  await fh.truncate(64 * 1024 * 1024);
  await fh.write(Buffer.from('MARKER-AT-START'), 0, 15, 0);
  await fh.close();
  const script: AgentCommand[] = [
    { id: 's1', type: 'inspect' },
    { id: 's2', type: 'erase', mode: 'metadata' },
    { id: 's3', type: 'deploy', imageUrl: `http://10.0.2.2:${filesPort}/image.raw`, checksum: createHash('sha256').update(image).digest('hex'), checksumType: 'sha256', hasUserData: true },
    { id: 's4', type: 'poweroff' },
  ];
  const userData = Buffer.from('#cloud-config\nhostname: smoke\n');
  const next = () => { const c = script.shift(); if (c) lab.commands.set(host, 'smoke-boot', c, c.type === 'deploy' ? userData : undefined); };
  next();
  const tick = setInterval(() => { if (!lab.commands.pending(host, 'smoke-boot')) next(); }, 200);

  const port = new URL(lab.apiUrl).port;
  const qemu = spawn('qemu-system-x86_64', [
    '-accel', 'tcg', '-m', '512', '-nographic', '-no-reboot',
    '-kernel', join(outDir, AGENT_BOOT_FILES.kernel), '-initrd', join(outDir, AGENT_BOOT_FILES.initramfs),
    '-append', `console=ttyS0 quiet ironflow.api=http://10.0.2.2:${port} ironflow.boot=smoke-boot`,
    '-drive', `file=${disk},if=none,id=d0,format=raw`, '-device', 'virtio-blk-pci,drive=d0,serial=SMOKE-SER-1',
    '-netdev', 'user,id=n0', '-device', `virtio-net-pci,netdev=n0,mac=${mac}`,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let console_ = '';
  qemu.stdout.on('data', (d: Buffer) => { console_ += d.toString(); });
  qemu.stderr.on('data', (d: Buffer) => { console_ += d.toString(); });
  const killer = setTimeout(() => qemu.kill('SIGKILL'), 180_000);
  const code = await new Promise<number | null>((r) => qemu.on('close', r));
  clearTimeout(killer);
  clearInterval(tick);
  await lab.close();
  await files.close();
  await writeFile(join(work, 'console.log'), console_);

  const written = await readFile(disk);
  const checks = {
    qemuPoweredOff: code === 0,
    inspected: lab.reports.some((r) => r.signal.report.commandId === 's1' && r.signal.report.status === 'ok'),
    erased: lab.reports.some((r) => r.signal.report.commandId === 's2' && r.signal.report.status === 'ok'),
    deployed: lab.reports.some((r) => r.signal.report.commandId === 's3' && r.signal.report.status === 'ok'),
    imageOnDisk: written.subarray(0, image.length).equals(image),
    userDataOnDisk: written.subarray(written.length - 1024 * 1024 + 512).subarray(0, userData.length).equals(userData),
  };
  for (const r of lab.reports) console.log(JSON.stringify(r.signal.report).slice(0, 300));
  console.log(JSON.stringify({ ...checks, seconds: (Date.now() - started) / 1000, console: join(work, 'console.log') }));
  return Object.values(checks).every(Boolean) ? 0 : 1;
}

main(process.argv[2] ?? '/tmp/agent-out').then((c) => process.exit(c), (err) => { console.error(err); process.exit(1); });
