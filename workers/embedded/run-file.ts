/**
 * The pid file of a long-running Ironflow process (the plane, `npm start`'s
 * launcher) and of everything it started. It answers two questions at the
 * next start on the same state dir:
 *
 * - Is another one still running? Then refuse, naming its pid: two planes on
 *   one state dir would share one Temporal database and one etcd.
 * - Did the last one die without stopping its children (kill -9, a crash)?
 *   Then end those leftovers, each BY PID and only if the process with that
 *   pid still has the recorded start time and command line, so nothing that
 *   merely reused a pid (or carries a similar name) is ever touched.
 *
 * The children's list is refreshed every `refreshMs` and on `refresh()`, so
 * it also covers processes started by libraries (dnsmasq, emulators) and
 * grandchildren that no `setpriv --pdeathsig` reaches.
 */
import { mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { descendants, describe, identify, stillRuns, type ProcessIdentity } from './proc';

interface RunRecord {
  owner: ProcessIdentity;
  /** What kind of process owns the file ("management plane", "npm start"). */
  role: string;
  children: ProcessIdentity[];
}

export interface RunFile {
  readonly path: string;
  /** Records the owner's current descendants now. */
  refresh(): void;
  /** Ends every recorded descendant that still runs (after the parts were stopped: orphans of a part that died). */
  endLeftovers(): Promise<ProcessIdentity[]>;
  /** Stops refreshing and removes the file (after the children were stopped). */
  release(): void;
}

/** Thrown when a live process already owns the run file; says which and how to stop it. */
export class AlreadyRunningError extends Error {}

function read(path: string): RunRecord | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as RunRecord;
  } catch {
    return undefined;
  }
}

function write(path: string, rec: RunRecord): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(rec, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, path);
}

/**
 * Ends the recorded leftovers of a dead owner: SIGTERM, then SIGKILL after
 * `graceMs` for those still there. Returns what it ended.
 */
export async function endLeftovers(children: ProcessIdentity[], graceMs = 3_000): Promise<ProcessIdentity[]> {
  const ours = children.filter(stillRuns);
  for (const p of ours) {
    try {
      process.kill(p.pid, 'SIGTERM');
    } catch {
      /* gone meanwhile */
    }
  }
  const deadline = Date.now() + graceMs;
  while (ours.some(stillRuns) && Date.now() < deadline) await sleep(100);
  for (const p of ours.filter(stillRuns)) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* gone meanwhile */
    }
  }
  while (ours.some(stillRuns) && Date.now() < deadline + 5_000) await sleep(50);
  return ours;
}

/**
 * Takes the run file at `path` for this process. Refuses (AlreadyRunningError)
 * while the recorded owner still runs; ends a dead owner's leftovers first.
 */
export async function claimRunFile(path: string, o: { role: string; stateDir: string; log?: (msg: string) => void; refreshMs?: number }): Promise<RunFile> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const me = identify(process.pid);
  if (!me) throw new Error(`cannot read /proc/${process.pid}: Ironflow needs Linux /proc`);
  const prev = read(path);
  if (prev && stillRuns(prev.owner)) {
    throw new AlreadyRunningError(
      `another Ironflow ${prev.role} is running on state dir ${o.stateDir}: ${describe(prev.owner)}. ` +
        `Stop it first (kill -INT ${prev.owner.pid}, or Ctrl-C in its terminal), or give this one its own --state-dir and ports.`,
    );
  }
  if (prev) {
    const ended = await endLeftovers(prev.children);
    for (const p of ended) o.log?.(`ended ${describe(p)}, left running by a ${prev.role} (pid ${prev.owner.pid}) that died without stopping it`);
  }
  const rec: RunRecord = { owner: me, role: o.role, children: [] };
  write(path, rec);
  let released = false;
  const refresh = () => {
    if (released) return;
    // Keep earlier children that still run even if they were re-parented
    // away (a daemon that double-forked): they are still ours to end.
    const now = descendants(process.pid);
    const known = new Set(now.map((p) => `${p.pid}/${p.startTime}`));
    rec.children = [...now, ...rec.children.filter((p) => !known.has(`${p.pid}/${p.startTime}`) && stillRuns(p))];
    try {
      write(path, rec);
    } catch {
      /* the state dir went away (tests clean up): nothing left to record */
    }
  };
  const timer = setInterval(refresh, o.refreshMs ?? 2_000);
  timer.unref();
  return {
    path,
    refresh,
    endLeftovers: () => endLeftovers(rec.children),
    release: () => {
      released = true;
      clearInterval(timer);
      try {
        unlinkSync(path);
      } catch {
        /* already gone */
      }
    },
  };
}
