import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { PlaneHealth } from './health';
import { descendants, describe, heldBy, portHolders, portInUse } from './proc';

/** A TCP port a child must bind itself: checked free before the start, and owned by the child before "ready". */
export interface PortClaim {
  port: number;
  /** Address it is bound on (default 127.0.0.1). */
  host?: string;
  /** Default tcp. */
  protocol?: 'tcp' | 'udp';
  /** What it serves, e.g. "Temporal frontend". */
  what: string;
  /** How the operator moves it, e.g. "--temporal-port". */
  flag?: string;
}

/** A child process Ironflow started (Temporal dev server, etcd, kube-apiserver...). */
export interface ManagedProcess {
  readonly name: string;
  /** The current child's pid (changes when supervision restarts it). */
  readonly pid: number;
  readonly logFile: string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone (and supervision has ended). */
  stop(graceMs?: number): Promise<void>;
}

export interface StartProcessOptions {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** stdout and stderr go here, appended, so a restart keeps the earlier run's lines. */
  logFile: string;
  /** Resolves true once the process serves; polled every 100 ms. */
  ready: () => Promise<boolean>;
  readyTimeoutMs: number;
  /** Ports this child binds: a port already taken fails the start naming its holder; ready needs the child itself to hold them. */
  ports?: PortClaim[];
  /** Keep it running: restart it (same arguments, same data) when it exits or stops answering. */
  supervise?: SuperviseOptions;
}

export interface SuperviseOptions {
  health: PlaneHealth;
  log: Logger;
  /** How often `ready()` is asked while running (default 5 s). */
  probeEveryMs?: number;
  /** Consecutive failed probes before a hung child is killed and restarted (default 3). */
  failuresBeforeRestart?: number;
  /** Restart backoff doubles from 1 s up to this (default 30 s). */
  maxBackoffMs?: number;
}

/** Thrown when a port a child needs is taken; names the holder so the operator can act. */
export class PortInUseError extends Error {
  constructor(
    readonly claim: PortClaim,
    readonly holders: string[],
  ) {
    super(
      `${claim.protocol === 'udp' ? 'UDP ' : ''}port ${claim.port} (${claim.what}) is already in use${holders.length ? ` by ${holders.join(', ')}` : ' (by a process this user cannot see)'}: ` +
        `stop that process${claim.flag ? ` or choose another port with ${claim.flag}` : ''}` +
        (claim.port >= 32768 && claim.port <= 60999 ? ` (ports 32768-60999 are also handed out to outgoing connections: prefer one below 32768)` : ''),
    );
  }
}

/** Children still running; killed if this process exits without stopping them. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export function assertPortsFree(ports: PortClaim[] = []): void {
  for (const claim of ports) {
    if (!portInUse(claim.port, claim.host, claim.protocol)) continue;
    throw new PortInUseError(claim, portHolders(claim.port, claim.host, claim.protocol).map(describe));
  }
}

/** True when `pid` itself (or a process it started) listens on every port. */
export function holdsPorts(pid: number, ports: PortClaim[] = []): boolean {
  if (ports.length === 0) return true;
  const ours = [pid, ...descendants(pid).map((d) => d.pid)];
  return ports.every((c) => heldBy(c.port, ours));
}

/**
 * The wrapper every child runs under: `setpriv --pdeathsig KILL` has the
 * kernel kill the child when this process dies, even by `kill -9` (it cannot
 * clean up then), and umask 077 makes every file the child writes (the
 * Temporal database, etcd's data) private to this user.
 */
function wrapped(command: string, args: string[]): [string, string[]] {
  return ['setpriv', ['--pdeathsig', 'KILL', '--', '/bin/sh', '-c', 'umask 077 && exec "$0" "$@"', command, ...args]];
}

interface Run {
  child: ChildProcess;
  exited: Promise<string>;
  /** Resolves once everything the child wrote is in its log file. */
  logged: Promise<void>;
  /** Set once it exited: "code 1" / "signal SIGKILL". */
  exit?: string;
}

function launch(opts: StartProcessOptions): Promise<Run> {
  return new Promise((resolve, reject) => {
    const log = createWriteStream(opts.logFile, { flags: 'a', mode: 0o600 });
    log.once('error', reject);
    log.once('open', () => {
      const [cmd, argv] = wrapped(opts.command, opts.args);
      const child: ChildProcess = spawn(cmd, argv, {
        cwd: opts.cwd,
        env: opts.env ?? process.env,
        stdio: ['ignore', 'pipe', 'pipe'],
        // Own process group: Ctrl-C in the terminal reaches only us, and we stop the
        // children in order (worker before Temporal, kube-apiserver before etcd).
        detached: true,
      });
      live.add(child);
      child.stdout?.pipe(log, { end: false });
      child.stderr?.pipe(log, { end: false });
      const run: Run = { child, exited: Promise.resolve(''), logged: new Promise((r) => log.once('close', () => r())) };
      run.exited = new Promise<string>((done) => {
        child.once('exit', (code, signal) => {
          live.delete(child);
          run.exit = signal ? `signal ${signal}` : `code ${code}`;
          done(run.exit);
        });
        child.once('error', (err) => {
          live.delete(child);
          log.write(`spawn error: ${err.message}\n`);
          run.exit = `spawn error ${err.message}`;
          done(run.exit);
        });
      });
      run.exited.finally(() => log.end()).catch(() => undefined);
      resolve(run);
    });
  });
}

async function terminate(run: Run, graceMs: number): Promise<void> {
  if (run.exit !== undefined) return;
  run.child.kill('SIGTERM');
  const gone = await Promise.race([run.exited.then(() => true), sleep(graceMs).then(() => false)]);
  if (!gone) {
    run.child.kill('SIGKILL');
    await run.exited;
  }
}

/** Starts one run and waits until it serves; fails with the end of its log. */
async function startRun(opts: StartProcessOptions): Promise<Run> {
  assertPortsFree(opts.ports);
  const run = await launch(opts);
  const deadline = Date.now() + opts.readyTimeoutMs;
  for (;;) {
    if (run.exit !== undefined) {
      await Promise.race([run.logged, sleep(2_000)]);
      throw new Error(`${opts.name} exited (${run.exit}) before it was ready; last lines of ${opts.logFile}:\n${tail(opts.logFile)}`);
    }
    // Something answering is not enough: it must be this child (a leftover of
    // a dead plane on the same port would answer the same questions).
    if (holdsPorts(run.child.pid ?? -1, opts.ports) && (await opts.ready().catch(() => false))) return run;
    if (Date.now() > deadline) {
      await terminate(run, 2_000);
      const taken = (opts.ports ?? []).flatMap((c) => portHolders(c.port).filter((h) => h.pid !== run.child.pid).map((h) => `port ${c.port} is held by ${describe(h)}`));
      throw new Error(`${opts.name} was not ready within ${opts.readyTimeoutMs} ms${taken.length ? ` (${taken.join('; ')})` : ''}; last lines of ${opts.logFile}:\n${tail(opts.logFile)}`);
    }
    await sleep(100);
  }
}

/**
 * Starts a process and waits until `ready()` says it serves. If it exits first,
 * or never becomes ready, the error carries the end of its log: that is where
 * the cause ("address already in use", a bad flag) is written. With
 * `supervise`, a child that exits or stops answering afterwards is reported
 * down and started again with backoff, on the same arguments and data.
 */
export async function startProcess(opts: StartProcessOptions): Promise<ManagedProcess> {
  let run = await startRun(opts);
  let stopping = false;
  let wake: () => void = () => undefined;
  const stopped = new Promise<void>((r) => (wake = r));
  let supervision: Promise<void> = Promise.resolve();

  if (opts.supervise) {
    const s = opts.supervise;
    const probeEvery = s.probeEveryMs ?? 5_000;
    const maxFailures = s.failuresBeforeRestart ?? 3;
    s.health.ok(opts.name, `pid ${run.child.pid}`);
    const probe = async (): Promise<boolean> => {
      const answer = Promise.race([opts.ready(), sleep(Math.max(2_000, probeEvery)).then(() => false)]);
      return (await answer.catch(() => false)) && holdsPorts(run.child.pid ?? -1, opts.ports);
    };
    supervision = (async () => {
      let failures = 0;
      while (!stopping) {
        const why = await Promise.race([run.exited.then((e) => `exited (${e})`), sleep(probeEvery).then(() => ''), stopped.then(() => '')]);
        if (stopping) return;
        if (!why) {
          if (await probe()) {
            failures = 0;
            s.health.ok(opts.name, `pid ${run.child.pid}`);
            continue;
          }
          if (stopping) return;
          failures += 1;
          if (failures < maxFailures) {
            s.log.error({ part: opts.name, pid: run.child.pid, failures }, `${opts.name} (pid ${run.child.pid}) did not answer (${failures}/${maxFailures})`);
            continue;
          }
          s.health.down(opts.name, `pid ${run.child.pid} stopped answering; killing it to restart`);
          run.child.kill('SIGKILL');
          await run.exited;
        } else {
          s.health.down(opts.name, `pid ${run.child.pid} ${why}; restarting it on the same data. Last lines of ${opts.logFile}:\n${tail(opts.logFile, 5)}`);
        }
        failures = 0;
        for (let attempt = 1; !stopping; attempt++) {
          const delay = Math.min(s.maxBackoffMs ?? 30_000, 1_000 * 2 ** (attempt - 1));
          await Promise.race([sleep(delay), stopped]);
          if (stopping) return;
          try {
            const next = await startRun(opts);
            if (stopping) {
              await terminate(next, 2_000);
              return;
            }
            run = next;
            s.health.restarted(opts.name);
            s.health.ok(opts.name, `restarted (pid ${run.child.pid}, attempt ${attempt})`);
            break;
          } catch (err) {
            s.health.down(opts.name, `restart attempt ${attempt} failed: ${(err as Error).message}`);
          }
        }
      }
    })().catch((err: unknown) => s.log.error({ err, part: opts.name }, `supervision of ${opts.name} ended with an error`));
  }

  return {
    name: opts.name,
    get pid() {
      return run.child.pid ?? -1;
    },
    logFile: opts.logFile,
    stop: async (graceMs = 10_000) => {
      stopping = true;
      wake();
      await supervision;
      await terminate(run, graceMs);
    },
  };
}
