/**
 * `npm start`: the management plane and, beside it, the virtual lab, as two
 * processes (the product process never embeds the test lab):
 *
 *   npm start ─ node dist/scripts/start.js           (this launcher; pid file <state>/run/start.json)
 *                 ├─ node dist/lab/main.js           (BMC emulators, simulated/QEMU servers)
 *                 └─ node dist/workers/main.js       (the plane; pid file <state>/run/plane.json)
 *                      └─ temporal, etcd, kube-apiserver, kube-controller-manager, dnsmasq
 *
 * The lab starts first: the plane serves DHCP on the lab's provisioning
 * network (QEMU machines), which only exists once the lab made it. Both
 * parts stay in this process group, so Ctrl-C reaches both; each stops what
 * it started. Both run under `setpriv --pdeathsig TERM`: if this launcher is
 * killed outright they stop as if told to, and the launcher itself stops both
 * when npm (its parent) is killed outright. If one part exits on its own, the
 * other is stopped and the launcher exits non-zero, saying which.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { InvalidArgumentError, Option } from 'commander';
import { LAB_READY, type LabReadyMessage } from '../api/lab-process';
import { projectRoot } from '../api/project-root';
import { planeCommand, planeConfigFrom } from '../workers/config';
import { AlreadyRunningError, claimRunFile } from '../workers/embedded/run-file';
import type { PlaneReadyMessage } from '../workers/main';

const root = projectRoot(__dirname);
const say = (line: string) => process.stderr.write(`npm start: ${line}\n`);

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError(`"${value}" is not a TCP port (1-65535)`);
  return n;
}

/** The launcher's own options, which the plane does not take. */
const LAB_OPTIONS = ['--no-lab', '--lab-inventory', '--lab-base-port'];
const TAKES_VALUE = new Set(['--lab-inventory', '--lab-base-port']);

/** argv without the lab's options ("--lab-inventory x" and "--lab-inventory=x" alike). */
export function withoutLabOptions(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const name = a.split('=')[0]!;
    if (!LAB_OPTIONS.includes(name)) out.push(a);
    else if (!a.includes('=') && TAKES_VALUE.has(name)) i++;
  }
  return out;
}

interface Part {
  name: string;
  child: ChildProcess;
  exited: Promise<string>;
  exit?: string;
}

function startPart(name: string, script: string, args: string[]): Part {
  const child = spawn('setpriv', ['--pdeathsig', 'TERM', '--', process.execPath, join(root, 'dist', script), ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const part: Part = { name, child, exited: Promise.resolve('') };
  part.exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve((part.exit = signal ? `signal ${signal}` : `code ${code}`)));
    child.once('error', (err) => resolve((part.exit = `spawn error ${err.message}`)));
  });
  return part;
}

/** Resolves with the part's ready message, or rejects when it exits first. */
function readyOf<T extends { kind: string }>(part: Part, kind: string): Promise<T> {
  return new Promise((resolve, reject) => {
    part.child.on('message', (m: { kind?: string }) => {
      if (m?.kind === kind) resolve(m as T);
    });
    void part.exited.then((how) => reject(new Error(`the ${part.name} exited (${how}) before it was ready; its output is above`)));
  });
}

async function main(): Promise<void> {
  const cmd = planeCommand('npm start')
    .description('Ironflow: the management plane and, beside it, the virtual lab (npm start -- <options>)')
    .addOption(new Option('--no-lab', 'run the plane alone, without the virtual lab'))
    .addOption(new Option('--lab-inventory <file>', 'servers of the virtual lab').env('IRONFLOW_LAB_INVENTORY').default(join(root, 'lab', 'inventory.yaml')))
    .addOption(new Option('--lab-base-port <port>', 'first port of the lab BMCs (Redfish shards, then IPMI at +100)').env('IRONFLOW_LAB_BASE_PORT').default(6200).argParser(port));
  cmd.parse(process.argv);
  const opts = cmd.opts<Parameters<typeof planeConfigFrom>[0] & { lab: boolean; labInventory: string; labBasePort: number }>();
  const cfg = planeConfigFrom(opts, process.env, (k) => cmd.getOptionValueSource(k));
  const planeArgs = withoutLabOptions(process.argv.slice(2));

  let run;
  try {
    run = await claimRunFile(join(cfg.stateDir, 'run', 'start.json'), { role: 'npm start', stateDir: cfg.stateDir, log: say });
  } catch (err) {
    if (err instanceof AlreadyRunningError) {
      say(err.message);
      process.exit(1);
    }
    throw err;
  }

  const parts: Part[] = [];
  let stopping = false;
  const stopAll = async (code: number) => {
    stopping = true;
    for (const p of parts) if (p.exit === undefined) p.child.kill('SIGTERM');
    await Promise.all(parts.map((p) => p.exited));
    // A part killed outright leaves its own children behind (emulators of a lab that got SIGKILL): end them by pid.
    for (const p of await run.endLeftovers()) say(`ended pid ${p.pid} (${p.cmdline.slice(0, 100)}), left behind by a part that did not stop it`);
    run.release();
    process.exit(code);
  };
  const onSignal = () => void stopAll(0);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // npm (our parent, package.json execs us) killed outright: nobody would stop us, so stop as if told to.
  const parent = process.ppid;
  const orphaned = setInterval(() => {
    if (process.ppid === parent || stopping) return;
    say(`the process that started npm start (pid ${parent}) is gone; stopping the plane and the lab`);
    void stopAll(0);
  }, 1_000);
  orphaned.unref();
  const watch = (p: Part) =>
    void p.exited.then((how) => {
      if (stopping) return;
      say(`the ${p.name} (pid ${p.child.pid}) exited (${how}); stopping the rest. Run npm start again to restart.`);
      void stopAll(1);
    });

  let lab: LabReadyMessage | undefined;
  try {
    if (opts.lab) {
      const labPart = startPart('lab', 'lab/main.js', [
        '--inventory', opts.labInventory,
        '--work-dir', join(cfg.stateDir, 'lab'),
        '--base-port', String(opts.labBasePort),
        '--pxe-http-url', `http://${cfg.pxeHost}:${cfg.pxeHttpPort}`,
        '--tftp', `${cfg.pxeHost}:${cfg.tftpPort}`,
        '--log-level', cfg.logLevel,
      ]);
      parts.push(labPart);
      lab = await readyOf<LabReadyMessage>(labPart, LAB_READY);
      watch(labPart);
      const net = lab.provisioningNetwork;
      if (net && !cfg.dhcp) {
        planeArgs.push('--dhcp-interface', net.interface, '--dhcp-netns', net.netns, '--dhcp-range', `${net.range.start},${net.range.end}`, '--dhcp-boot-url', net.bootUrl);
      }
      run.refresh();
    }
    const planePart = startPart('management plane', 'workers/main.js', planeArgs);
    parts.push(planePart);
    await readyOf<PlaneReadyMessage>(planePart, 'ironflow-plane-ready');
    watch(planePart);
    run.refresh();
  } catch (err) {
    say((err as Error).message);
    await stopAll(1);
    return;
  }

  const lines = lab
    ? [
        `  lab             ${lab.servers.redfish} Redfish + ${lab.servers.ipmi} IPMI simulated servers${lab.servers.qemu ? ` + ${lab.servers.qemu} QEMU machines` : ''} (process pid ${parts[0]!.child.pid}, beside the plane)`,
        `  lab manifests   kubectl apply -f ${lab.manifestsFile}`,
      ]
    : ['  lab             disabled (--no-lab)'];
  process.stdout.write([...lines, `  npm start       pid ${process.pid}; Ctrl-C stops the plane and the lab`, ''].join('\n'));
}

if (require.main === module) {
  main().catch((err: unknown) => {
    say(err instanceof Error ? err.message : String(err));
    process.exit(1);
  });
}
