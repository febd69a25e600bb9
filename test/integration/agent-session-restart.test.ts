/**
 * Kill -9 of the plane while the real agent is erasing, and while it is
 * writing an image (issue 12: "agent sessions survive a plane restart"). The provisioning services run in a
 * process of their own from dist/ (test/helpers/agent-plane-child.js; run
 * `npm run build` first); the session is started there, the boot script is
 * fetched from it as firmware does, the agent (agent/ironflow-agent.sh on
 * disk image files) starts its work, and the plane process is killed with
 * SIGKILL in the middle of it (after the first disk of an erase; as the
 * image starts streaming onto the disk). A new process on the same state dir and port
 * reads the session store back, and the agent's final report (retried while
 * the plane was away) is accepted against the persisted session and its
 * evidence, and reaches the host workflow in real Temporal exactly once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { existsSync } from 'node:fs';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as readline from 'node:readline';
import { Worker } from '@temporalio/worker';
import type { AgentReportSignal, ExpectedDisk } from '../../api/agent';
import type { LabServer } from '../../api/lab';
import { workflowIdFor } from '../../api/names';
import { projectRoot } from '../../api/project-root';
import { PXE_PATHS } from '../../api/pxe';
import { runAgent } from '../../lab/sim/run-agent';
import { createSysroot, labDiskBytes } from '../../lab/sim/sysroot';
import { kernelCmdline } from '../helpers/agent-lab';
import { sharedEnv, temporalTestContext, type TemporalTestContext } from '../helpers/env';
import { agentReportSink, sinkReportsQuery } from '../helpers/workflows/agent-report-sink';

const CHILD = join(__dirname, '..', 'helpers', 'agent-plane-child.js');

interface Plane {
  proc: ChildProcess;
  url: string;
  call(op: string, input?: unknown): Promise<unknown>;
  stderr: string[];
}

/** Starts the plane process and waits for it to listen. */
async function startPlane(cfg: Record<string, unknown>): Promise<Plane> {
  const proc = spawn(process.execPath, [CHILD, JSON.stringify(cfg)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  proc.stderr!.on('data', (c: Buffer) => stderr.push(c.toString()));
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let seq = 0;
  const url = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`plane process not ready in 30 s: ${stderr.join('')}`)), 30_000);
    proc.once('exit', (code) => reject(new Error(`plane process exited with ${code}: ${stderr.join('')}`)));
    readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line) as { ready?: boolean; url?: string; id?: number; result?: unknown; error?: string };
      if (msg.ready) {
        clearTimeout(t);
        resolve(msg.url!);
        return;
      }
      const w = waiting.get(msg.id!);
      waiting.delete(msg.id!);
      if (msg.error) w?.reject(new Error(msg.error));
      else w?.resolve(msg.result);
    });
  });
  return {
    proc, url, stderr,
    call: (op, input) => new Promise((resolve, reject) => {
      const id = ++seq;
      waiting.set(id, { resolve, reject });
      proc.stdin!.write(`${JSON.stringify({ id, op, input })}\n`);
    }),
  };
}

const killed = (p: ChildProcess) => new Promise<void>((resolve) => {
  if (p.exitCode !== null || p.signalCode !== null) return resolve();
  p.once('exit', () => resolve());
  p.kill('SIGKILL');
});

let temporal: TemporalTestContext;
let files: FastifyInstance;
let imageUrl: string;
let worker: Worker;
let workerRun: Promise<void>;
let dir: string;
const planes: Plane[] = [];

beforeAll(async () => {
  if (!existsSync(join(projectRoot(__dirname), 'dist', 'workers', 'provisioning.js'))) throw new Error('dist/ is missing: run `npm run build` before this test (npm test does)');
  dir = await mkdtemp(join(tmpdir(), 'agent-restart-'));
  temporal = await temporalTestContext('agent-restart');
  worker = await Worker.create({
    connection: temporal.nativeConnection, namespace: temporal.namespace, taskQueue: temporal.taskQueue,
    workflowsPath: require.resolve('../helpers/workflows/agent-report-sink'),
  });
  workerRun = worker.run();
  // The image comes from a server of its own: the download must not die with the plane.
  files = Fastify();
  files.get('/os.img', async (_req, reply) => reply.type('application/octet-stream').send(image));
  await files.listen({ host: '127.0.0.1', port: 0 });
  imageUrl = `http://127.0.0.1:${(files.server.address() as AddressInfo).port}/os.img`;
}, 60_000);
afterAll(async () => {
  for (const p of planes) await killed(p.proc);
  await files?.close();
  worker?.shutdown();
  await workerRun?.catch(() => undefined);
  await temporal?.close();
  await rm(dir, { recursive: true, force: true });
});

interface Scenario {
  command: (imageUrl: string) => Record<string, unknown>;
  /** The agent log line after which the plane is killed. */
  killAfter: RegExp;
  check: (final: AgentReportSignal, disks: Record<string, Buffer>) => void;
}

const marker = Buffer.from('IRONFLOW-MARKER-BEFORE'.padEnd(64, '#'));
const image = randomBytes(24 * 1024 * 1024 + 777);
const imageSha = createHash('sha256').update(image).digest('hex');

const scenarios: Record<'erasing' | 'writing an image', Scenario> = {
  erasing: {
    command: () => ({ id: 'op-1', type: 'erase', mode: 'full' }),
    killAfter: /erase full vda: /,
    check: (final, disks) => {
      const records = (final.report as { data: { disks: { disk: string; serialNumber: string; sampleSha256?: string }[] } }).data.disks;
      expect(records.map((r) => [r.disk, r.serialNumber, typeof r.sampleSha256])).toEqual([['vda', 'RS-A', 'string'], ['vdb', 'RS-B', 'string']]);
      for (const d of Object.values(disks)) expect(d.subarray(1 << 20, (1 << 20) + marker.length).equals(Buffer.alloc(marker.length))).toBe(true);
    },
  },
  'writing an image': {
    command: (imageUrl) => ({ id: 'op-1', type: 'deploy', imageUrl, checksum: imageSha, checksumType: 'sha256', hasUserData: false }),
    killAfter: /deploy: .* -> \/dev\//,
    check: (final, disks) => {
      expect(final.report).toMatchObject({ data: { rootDevice: '/dev/vda', checksum: imageSha, bytesWritten: image.length, sampleSha256: expect.any(String) } });
      expect(disks.vda!.subarray(0, image.length).equals(image)).toBe(true);
    },
  },
};

test.each(Object.keys(scenarios) as (keyof typeof scenarios)[])('kill -9 of the plane while the agent is %s: the restarted plane accepts its report against the persisted session, and the workflow gets it once', async (what) => {
  const sc = scenarios[what];
  const host = { namespace: 'lab', name: `restart-${what.replace(/\W+/g, '-')}-${Date.now().toString(36)}` };
  const mac = what === 'erasing' ? '52:54:00:5e:00:01' : '52:54:00:5e:00:02';
  const server: LabServer = {
    name: host.name, vendor: 'Lab', model: 'L1', cpus: 2, memoryMiB: 1024,
    disks: [{ name: 'vda', sizeGiB: 0.125, serialNumber: 'RS-A' }, { name: 'vdb', sizeGiB: 0.125, serialNumber: 'RS-B' }],
    nics: [{ name: 'eth0', mac }], bmc: { protocol: 'ipmi', username: 'u', password: 'p' },
  };
  const disks: ExpectedDisk[] = server.disks.map((d) => ({ name: d.name, serialNumber: d.serialNumber, sizeBytes: labDiskBytes(d.sizeGiB) }));
  const handle = await temporal.client.workflow.start(agentReportSink, { workflowId: workflowIdFor('BareMetalHost', host.namespace, host.name), taskQueue: temporal.taskQueue });
  const cfg = { stateDir: join(dir, host.name, 'state'), filesDir: join(dir, host.name, 'files'), temporalAddress: sharedEnv().temporalAddress, namespace: temporal.namespace };

  const first = await startPlane({ ...cfg, httpPort: 0 });
  planes.push(first);
  const port = Number(new URL(first.url).port);
  const { bootId } = (await first.call('startAgentSession', { host, mac, command: sc.command(imageUrl), inspectedDisks: disks })) as { bootId: string };

  const sysroot = await createSysroot(server, { dir: join(dir, host.name, 'machine'), apiUrl: first.url, bootId });
  for (const p of Object.values(sysroot.diskPaths)) {
    const fh = await open(p, 'r+');
    await fh.write(marker, 0, marker.length, 1 << 20);
    await fh.close();
  }
  const script = await (await fetch(first.url + PXE_PATHS.macScript(mac))).text();
  await writeFile(join(sysroot.dir, 'proc/cmdline'), `${kernelCmdline(script)}\n`);

  // The agent runs; at the chosen step the plane dies, and comes back (same state dir, same port) while the agent works on.
  let second: Plane | undefined;
  let restart: Promise<void> | undefined;
  const lines: string[] = [];
  const ac = new AbortController();
  const agent = runAgent({
    sysroot: sysroot.dir, signal: ac.signal, timeoutMs: 120_000,
    onLog: (line) => {
      lines.push(line);
      if (!restart && sc.killAfter.test(line)) {
        restart = (async () => {
          await killed(first.proc);
          second = await startPlane({ ...cfg, httpPort: port });
          planes.push(second);
        })();
      }
    },
  });
  const deadline = Date.now() + 90_000;
  let final: AgentReportSignal | undefined;
  while (!final && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    final = (await handle.query(sinkReportsQuery)).find((s) => s.report.status !== 'progress');
  }
  ac.abort();
  await agent;
  await restart;
  expect(restart).toBeDefined();
  expect(first.proc.signalCode).toBe('SIGKILL');
  expect(final).toMatchObject({ bootId, report: { commandId: 'op-1', status: 'ok' } });
  // The agent really had to wait for the new plane: calls went unanswered while the plane was gone.
  expect(lines.join('\n')).toMatch(/failed \(HTTP 000\), retry|progress report not accepted \(HTTP 000\)/);
  // Once: the signal arrived a single time, and the disks hold what the agent did.
  await new Promise((r) => setTimeout(r, 500));
  expect((await handle.query(sinkReportsQuery)).filter((s) => s.report.status !== 'progress')).toHaveLength(1);
  sc.check(final!, Object.fromEntries(await Promise.all(Object.entries(sysroot.diskPaths).map(async ([k, p]) => [k, await readFile(p)] as const))));
  expect(await second!.call('getAgentSession', { host, commandId: 'op-1' })).toMatchObject({ bootId, state: 'finished', report: { status: 'ok' } });
  expect(await second!.call('pendingDeliveries')).toEqual([]);
}, 120_000);
