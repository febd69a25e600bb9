import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { openSync, readFileSync, closeSync } from 'node:fs';

/** A child process of the lab (an emulator), stopped by `stop()` or when this process exits. */
export interface LabChild {
  readonly pid: number;
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
 * Starts `command`, output appended to `logFile`, and polls `ready()` every
 * 100 ms up to `readyTimeoutMs`. Fails with the log's tail if the child exits
 * first or never gets ready: that is where an emulator says what is wrong.
 */
export async function startLabChild(o: {
  command: string;
  args: string[];
  logFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  ready: () => Promise<boolean>;
  readyTimeoutMs: number;
}): Promise<LabChild> {
  const fd = openSync(o.logFile, 'a');
  const child = spawn(o.command, o.args, { cwd: o.cwd, env: o.env ?? process.env, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  live.add(child);
  let exited: string | undefined;
  const gone = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = `exited with ${signal ?? code}`;
      live.delete(child);
      resolve();
    });
    child.once('error', (err) => {
      exited = `failed to start: ${err.message}`;
      live.delete(child);
      resolve();
    });
  });
  const stop = async () => {
    if (exited) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
    await gone;
    clearTimeout(timer);
  };
  const deadline = Date.now() + o.readyTimeoutMs;
  while (!exited) {
    if (await o.ready().catch(() => false)) return { pid: child.pid!, logFile: o.logFile, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${o.command} did not get ready within ${o.readyTimeoutMs} ms; end of ${o.logFile}:\n${tailOf(o.logFile)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${o.command} ${exited} before it was ready; end of ${o.logFile}:\n${tailOf(o.logFile)}`);
}
