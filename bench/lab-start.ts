/**
 * What a lab of N simulated servers costs to start and keep idle, without the
 * plane: start time, processes (sushy shards, ipmi_sim per IPMI server),
 * memory (this process + emulators), open file descriptors, idle CPU.
 *
 *   npm run bench -- lab-start [hosts=200] [--ipmi=<share 0..1>]
 *
 * The PXE endpoints point at closed loopback ports: nothing boots here.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { generatedInventory } from '../lab/inventory';
import { startLab } from '../lab/lab';

const args = process.argv.slice(2);
const N = Number(args.find((a) => /^\d+$/.test(a)) ?? 200);
const IPMI_SHARE = Number(args.find((a) => a.startsWith('--ipmi='))?.slice(7) ?? 0.25);

/** pid -> { rss KiB, cpu s } of this process and every process whose command line names `dir`. */
function processes(dir: string): Array<{ pid: number; name: string; rssKiB: number; cpuS: number }> {
  const out = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (Number(pid) !== process.pid && !cmd.includes(dir)) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
      const name = Number(pid) === process.pid ? 'lab (node)' : /sushy/.test(cmd) ? 'sushy-emulator' : /ipmi_sim/.test(cmd) ? 'ipmi_sim' : cmd.split(' ')[0]!;
      out.push({ pid: Number(pid), name, rssKiB, cpuS: (Number(f[11]) + Number(f[12])) / 100 });
    } catch {
      /* gone */
    }
  }
  return out;
}

function summary(ps: ReturnType<typeof processes>): string {
  const by = new Map<string, { n: number; rssKiB: number; cpuS: number }>();
  for (const p of ps) {
    const b = by.get(p.name) ?? { n: 0, rssKiB: 0, cpuS: 0 };
    b.n += 1;
    b.rssKiB += p.rssKiB;
    b.cpuS += p.cpuS;
    by.set(p.name, b);
  }
  return [...by].map(([k, v]) => `${k} x${v.n}: ${(v.rssKiB / 1024).toFixed(0)} MiB RSS, ${v.cpuS.toFixed(1)} CPU s`).join('; ');
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ironflow-lab-start-'));
  const inventory = generatedInventory(N, { namespace: 'start' });
  const ipmi = Math.round(N * IPMI_SHARE);
  for (const s of inventory.servers.slice(N - ipmi)) s.bmc.protocol = 'ipmi';
  const t0 = Date.now();
  const lab = await startLab({ inventory, workDir: join(dir, 'lab'), pxe: { httpUrl: 'http://127.0.0.1:9', tftp: { host: '127.0.0.1', port: 9 } } });
  try {
    const startS = (Date.now() - t0) / 1000;
    const fds = readdirSync('/proc/self/fd').length;
    const limit = execFileSync('sh', ['-c', 'ulimit -n']).toString().trim();
    console.log(`lab-start: ${N} servers (${N - ipmi} Redfish, ${ipmi} IPMI) started in ${startS.toFixed(1)} s; lab process ${fds} open fds (ulimit -n ${limit})`);
    const before = processes(dir);
    console.log(`  after start: ${summary(before)}`);
    await sleep(30_000);
    const after = processes(dir);
    const idle = after.reduce((n, p) => n + p.cpuS, 0) - before.reduce((n, p) => n + p.cpuS, 0);
    console.log(`  idle 30 s: ${idle.toFixed(1)} CPU s in all lab processes (${((idle / 30) * 100).toFixed(0)}% of one core)`);
    console.log(`  disk: ${execFileSync('du', ['-sh', dir]).toString().split('\t')[0]}`);
  } finally {
    const t1 = Date.now();
    await lab.stop();
    console.log(`  stopped in ${((Date.now() - t1) / 1000).toFixed(1)} s`);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
