/**
 * `npm start` (the launcher, the plane beside the lab) leaves nothing behind,
 * whatever kills it: its children are tied to it (setpriv --pdeathsig) and
 * what cannot be tied (a lab emulator whose lab process was killed outright)
 * is recorded in pid files and ended BY PID at the next start. A second
 * plane on one state dir and a port someone else holds are clear errors,
 * never a silent "ready". The process list is checked by pid, start time and
 * command line.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import type { LabInventory } from '../../api/lab';
import { projectRoot } from '../../api/project-root';
import { freePort } from '../../workers/embedded/ports';
import { identify, stillRuns, type ProcessIdentity } from '../../workers/embedded/proc';
import { sharedEnv } from '../helpers/env';
import { registerTestSecret } from '../helpers/secrets';
import { kubeApiTestPort } from '../helpers/ports';

const root = projectRoot(__dirname);
type RunRecord = { owner: ProcessIdentity; children: ProcessIdentity[] };

interface Launched {
  child: ChildProcess;
  output: () => string;
  exit: Promise<{ code: number | null; signal: string | null }>;
}

/** Every process (but this one) whose command line names `dir`. */
function processesMentioning(dir: string): ProcessIdentity[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d) && Number(d) !== process.pid)
    .map((d) => identify(Number(d)))
    .filter((p): p is ProcessIdentity => !!p && p.cmdline.includes(dir));
}

async function waitFor(what: string, timeoutMs: number, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(200);
  }
}

describe('npm start leaves no process behind', () => {
  const env = sharedEnv();
  const stateDir = join(env.stateDir, `procs-${randomBytes(3).toString('hex')}`);
  const runFile = (name: string) => JSON.parse(readFileSync(join(stateDir, 'run', name), 'utf8')) as RunRecord;
  let args: string[];
  let current: Launched | undefined;
  let starts = 0;

  const launch = async (extraEnv: NodeJS.ProcessEnv = {}): Promise<Launched> => {
    let out = '';
    const logFile = join(env.stateDir, 'logs', `procs-${++starts}.log`);
    // Its own process group, as a terminal job: Ctrl-C is a SIGINT to the whole group.
    const child = spawn(process.execPath, [join(root, 'dist', 'scripts', 'start.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, ...extraEnv } });
    const exit = new Promise<{ code: number | null; signal: string | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
    for (const s of [child.stdout!, child.stderr!]) s.on('data', (c: Buffer) => {
      out += c.toString();
      writeFileSync(logFile, out);
    });
    const launched: Launched = { child, output: () => out, exit };
    current = launched;
    await Promise.race([
      waitFor('npm start ready', 120_000, () => out.includes('Ctrl-C stops the plane and the lab')),
      exit.then((e) => {
        throw new Error(`npm start exited (${e.code ?? e.signal}) before ready:\n${out.slice(-3000)}`);
      }),
    ]);
    return launched;
  };

  beforeAll(async () => {
    mkdirSync(stateDir, { recursive: true });
    const password = `p-${randomBytes(5).toString('hex')}`;
    registerTestSecret(password);
    const inventory: LabInventory = {
      namespace: 'procs',
      servers: [
        { name: 'rf-1', vendor: 'Dell Inc.', model: 'R650', cpus: 2, memoryMiB: 2048, disks: [{ name: 'sda', sizeGiB: 0.0625, serialNumber: 'P-RF', rotational: false }], nics: [{ name: 'eth0', mac: '52:54:00:e2:bb:01' }], bmc: { protocol: 'redfish', username: 'admin', password } },
        { name: 'ipmi-1', vendor: 'Supermicro', model: 'X', cpus: 2, memoryMiB: 2048, disks: [{ name: 'vda', sizeGiB: 0.0625, serialNumber: 'P-IPMI', rotational: false }], nics: [{ name: 'eth0', mac: '52:54:00:e2:bb:02' }], bmc: { protocol: 'ipmi', username: 'admin', password } },
      ],
    };
    const inventoryFile = join(stateDir, 'inventory.yaml');
    writeFileSync(inventoryFile, stringify(inventory));
    const apiPort = await kubeApiTestPort();
    args = [
      '--state-dir', stateDir,
      '--temporal-port', String(await freePort()),
      '--temporal-ui-port', String(await freePort()),
      '--kube-api-port', String(apiPort),
      '--codec-port', String(await freePort()),
      '--pxe-http-port', String(await freePort()),
      '--tftp-port', String(await freePort()),
      '--lab-inventory', inventoryFile,
      '--lab-base-port', String(await freePort()),
      '--agent-boot-dir', join(root, '.ironflow', 'boot'),
      '--watch-namespace', 'procs',
    ];
  });
  afterAll(async () => {
    if (current?.child.pid && current.child.exitCode === null && current.child.signalCode === null) process.kill(-current.child.pid, 'SIGKILL');
  });

  it('refuses a second plane on the same state dir, naming the running one', async () => {
    const first = await launch();
    const plane = runFile('plane.json').owner;
    const second = spawnSync(process.execPath, [join(root, 'dist', 'workers', 'main.js'), ...args.slice(0, args.indexOf('--lab-inventory'))], { encoding: 'utf8', timeout: 60_000 });
    expect(second.status).toBe(1);
    expect(second.stderr).toContain(`another Ironflow management plane is running on state dir ${stateDir}: pid ${plane.pid} (`);
    expect(stillRuns(plane)).toBe(true);
    expect(first.child.exitCode).toBeNull();
  }, 180_000);

  it('after kill -9 of the launcher and the lab, the next start ends the orphaned emulators by pid, and the demo KUBECONFIG does not break it', async () => {
    const first = current!;
    const launcher = runFile('start.json');
    const plane = runFile('plane.json');
    const lab = launcher.children.find((c) => c.cmdline.includes('lab/main.js'))!;
    const emulators = launcher.children.filter((c) => c.cmdline.includes(join(stateDir, 'lab')) && !c.cmdline.includes('lab/main.js'));
    expect(emulators.map((e) => e.cmdline)).toEqual(expect.arrayContaining([expect.stringContaining('sushy-emulator'), expect.stringContaining('ipmi_sim')]));
    // The lab first, the launcher right after (no event loop turn between): neither can stop anything.
    process.kill(lab.pid, 'SIGKILL');
    process.kill(first.child.pid!, 'SIGKILL');
    await first.exit;
    // The plane is tied to the launcher: it stops itself (in order) when the launcher dies.
    await waitFor('the plane stopping after its launcher died', 60_000, () => !stillRuns(plane.owner));
    for (const c of plane.children) expect([c.cmdline, stillRuns(c)]).toEqual([c.cmdline, false]);
    // Negative control: the lab's emulators could not be tied and are orphans now; the next start must end them.
    const orphans = emulators.filter(stillRuns);
    expect(orphans.length).toBeGreaterThan(0);

    // The README demo leaves KUBECONFIG pointing at the plane's own kubeconfig.
    const second = await launch({ KUBECONFIG: join(stateDir, 'kubeconfig') });
    for (const o of orphans) {
      expect(stillRuns(o)).toBe(false);
      expect(second.output()).toContain(`ended pid ${o.pid} (`);
    }
    expect(second.output()).toContain('embedded kube-apiserver + etcd + kube-controller-manager');
    expect(second.output()).not.toMatch(/address already in use/i);
  }, 240_000);

  it('after kill -9 of the plane its embedded children are gone at once, and the launcher stops the lab and says why', async () => {
    const launched = current!;
    const plane = runFile('plane.json');
    const embedded = plane.children.filter((c) => /temporal|etcd|kube-apiserver|kube-controller-manager/.test(c.cmdline));
    expect(embedded.length).toBeGreaterThanOrEqual(4);
    const labProcs = runFile('start.json').children.filter((c) => c.cmdline.includes(join(stateDir, 'lab')));
    process.kill(plane.owner.pid, 'SIGKILL');
    await waitFor('the embedded children dying with the plane', 10_000, () => embedded.every((c) => !stillRuns(c)));
    const exit = await launched.exit;
    expect(exit.code).toBe(1);
    expect(launched.output()).toContain(`the management plane (pid ${plane.owner.pid}) exited (signal SIGKILL); stopping the rest`);
    for (const c of labProcs) expect([c.cmdline, stillRuns(c)]).toEqual([c.cmdline, false]);
  }, 120_000);

  it('starts again without "address already in use", and Ctrl-C then leaves no process of it behind', async () => {
    const third = await launch();
    expect(third.output()).not.toMatch(/address already in use/i);
    const recorded = [...runFile('start.json').children, ...runFile('plane.json').children, runFile('plane.json').owner];
    expect(recorded.length).toBeGreaterThanOrEqual(8);
    process.kill(-third.child.pid!, 'SIGINT'); // what the terminal does on Ctrl-C
    const exit = await Promise.race([third.exit, sleep(90_000).then(() => ({ code: -1, signal: 'timeout' }))]);
    expect(exit).toEqual({ code: 0, signal: null });
    const left = recorded.filter(stillRuns);
    expect(left).toEqual([]);
    expect(processesMentioning(stateDir)).toEqual([]);
    for (const f of readdirSync(join(stateDir, 'logs'))) expect([f, readFileSync(join(stateDir, 'logs', f), 'utf8')]).not.toEqual([f, expect.stringMatching(/address already in use/i)]);
  }, 240_000);

  it('a port someone else holds is an error naming the port and its holder, not a "ready"', async () => {
    const decoy = createServer();
    const port = await new Promise<number>((r) => decoy.listen(0, '127.0.0.1', () => r((decoy.address() as { port: number }).port)));
    try {
      const other = join(stateDir, 'other');
      const a = [...args.slice(0, args.indexOf('--lab-inventory'))];
      a[a.indexOf('--state-dir') + 1] = other;
      a[a.indexOf('--temporal-port') + 1] = String(port);
      const r = spawnSync(process.execPath, [join(root, 'dist', 'workers', 'main.js'), ...a], { encoding: 'utf8', timeout: 60_000 });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`port ${port} (Temporal frontend) is already in use by pid ${process.pid} (`);
      expect(r.stderr).toContain('--temporal-port');
      expect(r.stdout).not.toContain('management plane is ready');
    } finally {
      decoy.close();
    }
  }, 90_000);
});
