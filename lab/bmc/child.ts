import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { openSync, readFileSync, closeSync } from 'node:fs';

/** A child process of the lab (an emulator), stopped by `stop()` or when this process exits. */
export interface LabChild {
  /** The running process (a new one after each supervised restart). */
  readonly pid: number;
  /** Supervised restarts so far. */
  readonly restarts: number;
  readonly logFile: string;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** The end of a log file, for error messages. */
export function tailOf(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** A port on 127.0.0.1 that was free a moment ago (`udp` asks the kernel for a UDP one). */
export async function freeLoopbackPort(kind: 'tcp' | 'udp' = 'tcp'): Promise<number> {
  if (kind === 'udp') {
    const { createSocket } = await import('node:dgram');
    const s = createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    const port = s.address().port;
    await new Promise<void>((r) => s.close(() => r()));
    return port;
  }
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Supervision of a lab emulator: a BMC does not stay dead because its
 * process was killed. An exit that `stop()` did not ask for is logged and the
 * same command (same port, same config, same state folder) is started again
 * after a backoff: 250 ms, doubling up to 15 s, back to 250 ms once a run has
 * lasted 30 s. `ready()` is polled after each restart and its answer logged.
 */
export interface Supervision {
  /** Names the emulator in log lines, e.g. "sushy-emulator shard-0 (port 8000)". */
  name: string;
  log?: (line: string) => void;
  /** The emulator died; it is started again in `restartInMs`. */
  onDown?: (reason: string, restartInMs: number) => void;
  /** A restarted emulator answers again. */
  onUp?: (msSinceRestart: number) => void;
}

export const RESTART_BACKOFF = { initialMs: 250, maxMs: 15_000, stableAfterMs: 30_000 } as const;

/**
 * Starts `command`, output appended to `logFile`, and polls `ready()` every
 * 100 ms up to `readyTimeoutMs`. Fails with the log's tail if the child exits
 * first or never gets ready: that is where an emulator says what is wrong.
 * With `supervise`, a later unexpected exit restarts it (see Supervision).
 */
export async function startLabChild(o: {
  command: string;
  args: string[];
  logFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  ready: () => Promise<boolean>;
  readyTimeoutMs: number;
  supervise?: Supervision;
}): Promise<LabChild> {
  let stopping = false;
  let restarts = 0;
  let backoffMs: number = RESTART_BACKOFF.initialMs;
  let restartTimer: NodeJS.Timeout | undefined;
  const spawnOnce = () => {
    const fd = openSync(o.logFile, 'a');
    const child = spawn(o.command, o.args, { cwd: o.cwd, env: o.env ?? process.env, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    live.add(child);
    const run = { child, startedAt: Date.now(), exited: undefined as string | undefined, gone: undefined as unknown as Promise<void> };
    run.gone = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        run.exited = `exited with ${signal ?? code}`;
        live.delete(child);
        resolve();
      });
      child.once('error', (err) => {
        run.exited = `failed to start: ${err.message}`;
        live.delete(child);
        resolve();
      });
    });
    return run;
  };
  let current = spawnOnce();

  const superviseRun = (run: typeof current) => {
    if (!o.supervise) return;
    const sup = o.supervise;
    void run.gone.then(() => {
      if (stopping || run !== current) return;
      if (Date.now() - run.startedAt >= RESTART_BACKOFF.stableAfterMs) backoffMs = RESTART_BACKOFF.initialMs;
      const delay = backoffMs;
      backoffMs = Math.min(backoffMs * 2, RESTART_BACKOFF.maxMs);
      sup.log?.(`lab: ${sup.name} (pid ${run.child.pid}) ${run.exited}; restarting it in ${delay} ms (restart ${restarts + 1})`);
      sup.onDown?.(run.exited ?? 'exited', delay);
      restartTimer = setTimeout(() => {
        restartTimer = undefined;
        if (stopping) return;
        restarts += 1;
        current = spawnOnce();
        superviseRun(current);
        const t0 = Date.now();
        void (async () => {
          while (!stopping && run !== current && !current.exited && Date.now() - t0 < o.readyTimeoutMs) {
            if (await o.ready().catch(() => false)) {
              sup.log?.(`lab: ${sup.name} answers again (pid ${current.child.pid}, ${Date.now() - t0} ms after restart ${restarts})`);
              sup.onUp?.(Date.now() - t0);
              return;
            }
            await new Promise((r) => setTimeout(r, 100));
          }
          if (!stopping && !current.exited) sup.log?.(`lab: ${sup.name} restarted (pid ${current.child.pid}) but not ready within ${o.readyTimeoutMs} ms; end of ${o.logFile}:\n${tailOf(o.logFile)}`);
        })();
      }, delay);
      restartTimer.unref();
    });
  };

  const stop = async () => {
    stopping = true;
    if (restartTimer) clearTimeout(restartTimer);
    const run = current;
    if (run.exited) return;
    run.child.kill('SIGTERM');
    const timer = setTimeout(() => run.child.kill('SIGKILL'), 3_000);
    await run.gone;
    clearTimeout(timer);
  };
  const handle = {
    get pid() {
      return current.child.pid!;
    },
    get restarts() {
      return restarts;
    },
    logFile: o.logFile,
    stop,
  };
  const deadline = Date.now() + o.readyTimeoutMs;
  while (!current.exited) {
    if (await o.ready().catch(() => false)) {
      superviseRun(current);
      return handle;
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${o.command} did not get ready within ${o.readyTimeoutMs} ms; end of ${o.logFile}:\n${tailOf(o.logFile)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${o.command} ${current.exited} before it was ready; end of ${o.logFile}:\n${tailOf(o.logFile)}`);
}
