import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** A child process Ironflow started (Temporal dev server, etcd, kube-apiserver...). */
export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
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

/**
 * Starts a process and waits until `ready()` says it serves. If it exits first,
 * or never becomes ready, the error carries the end of its log: that is where
 * the cause ("address already in use", a bad flag) is written.
 */
export async function startProcess(opts: StartProcessOptions): Promise<ManagedProcess> {
  const log = createWriteStream(opts.logFile, { flags: 'a' });
  await new Promise<void>((resolve, reject) => log.once('open', () => resolve()).once('error', reject));
  const child: ChildProcess = spawn(opts.command, opts.args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Own process group: Ctrl-C in the terminal reaches only us, and we stop the
    // children in order (worker before Temporal, kube-apiserver before etcd).
    detached: true,
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exitCode = code ?? (signal ? -1 : null);
      resolve();
    });
    child.once('error', (err) => {
      log.write(`spawn error: ${err.message}\n`);
      exitCode = -1;
      resolve();
    });
  });
  exited.finally(() => log.end()).catch(() => undefined);

  const stop = async (graceMs = 10_000): Promise<void> => {
    if (exitCode !== undefined) return;
    child.kill('SIGTERM');
    const killed = await Promise.race([exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!killed) {
      child.kill('SIGKILL');
      await exited;
    }
  };

  const deadline = Date.now() + opts.readyTimeoutMs;
  for (;;) {
    if (exitCode !== undefined) {
      throw new Error(`${opts.name} exited (code ${exitCode}) before it was ready; last lines of ${opts.logFile}:\n${tail(opts.logFile)}`);
    }
    if (await opts.ready().catch(() => false)) break;
    if (Date.now() > deadline) {
      await stop(2_000);
      throw new Error(`${opts.name} was not ready within ${opts.readyTimeoutMs} ms; last lines of ${opts.logFile}:\n${tail(opts.logFile)}`);
    }
    await sleep(100);
  }
  return { name: opts.name, pid: child.pid ?? -1, logFile: opts.logFile, stop };
}
