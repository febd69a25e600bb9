/**
 * Runs the real ramdisk agent (agent/ironflow-agent.sh under `busybox sh`)
 * for a simulated server: SYSROOT points at the server's synthesized tree
 * (./sysroot.ts), whose proc/cmdline carries the API URL and boot id. The
 * agent's "poweroff -f" becomes exit code 97 when SYSROOT is set, which this
 * maps to 'poweroff'.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { projectRoot } from '../../api/project-root';

/** Exit code of the agent for "power off" in the lab (agent/ironflow-agent.sh). */
export const AGENT_LAB_POWEROFF_EXIT = 97;

// From the checkout, not from __dirname: dist/ has no copy of the shell scripts.
export const AGENT_SCRIPT = join(projectRoot(__dirname), 'agent', 'ironflow-agent.sh');

export interface RunAgentOptions {
  sysroot: string;
  /** Kill the agent after this long (default 120 s). */
  timeoutMs?: number;
  /** Tries per API call while unreachable (IRONFLOW_MAX_ATTEMPTS, default 5 in the lab). */
  maxAttempts?: number;
  /** Stop after this many polls (IRONFLOW_MAX_POLLS, default 600). */
  maxPolls?: number;
  /** Receives each line the agent logs (stderr). */
  onLog?: (line: string) => void;
  busybox?: string;
  signal?: AbortSignal;
}

export type AgentExit =
  | { outcome: 'poweroff'; log: string }
  | { outcome: 'exited'; code: number; log: string }
  | { outcome: 'timeout'; log: string };

export function runAgent(opts: RunAgentOptions): Promise<AgentExit> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  return new Promise((resolvePromise, reject) => {
    const child = spawn(opts.busybox ?? 'busybox', ['sh', AGENT_SCRIPT], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        SYSROOT: opts.sysroot,
        // Temporary files (the token never leaves memory, user data passes through here) stay in the sysroot.
        TMPDIR: join(opts.sysroot, 'tmp'),
        IRONFLOW_MAX_ATTEMPTS: String(opts.maxAttempts ?? 5),
        IRONFLOW_BACKOFF_MAX: '2',
        IRONFLOW_HTTP_TIMEOUT: '10',
        IRONFLOW_IMAGE_TIMEOUT: String(Math.ceil(timeoutMs / 1000)),
        IRONFLOW_MAX_POLLS: String(opts.maxPolls ?? 600),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Own process group, so a timeout kills the agent's wget/dd children too.
      detached: true,
    });
    let log = '';
    let pending = '';
    const onData = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      log += text;
      pending += text;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const l of lines) opts.onLog?.(l);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const kill = () => {
      try { if (child.pid) process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
    };
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; kill(); }, timeoutMs);
    opts.signal?.addEventListener('abort', kill, { once: true });
    child.on('error', (err) => { clearTimeout(timer); reject(new Error(`could not start ${opts.busybox ?? 'busybox'} sh ${AGENT_SCRIPT}: ${err.message} (install busybox-static)`)); });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (pending) opts.onLog?.(pending);
      if (timedOut) resolvePromise({ outcome: 'timeout', log });
      else if (code === AGENT_LAB_POWEROFF_EXIT) resolvePromise({ outcome: 'poweroff', log });
      else resolvePromise({ outcome: 'exited', code: code ?? -1, log });
    });
  });
}
