/**
 * What Linux's /proc says about processes and sockets: enough to tell a
 * process apart from a later one that reuses its pid (pid + start time +
 * command line), to list the processes a plane started, and to name who
 * holds a TCP port. Never used to pick processes by name: every kill in
 * Ironflow goes to a pid whose identity was recorded when it was ours.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/** A process as recorded: pid alone is not an identity (pids are reused). */
export interface ProcessIdentity {
  pid: number;
  /** Clock ticks since boot when the process started (/proc/<pid>/stat field 22). */
  startTime: number;
  /** argv joined by spaces. */
  cmdline: string;
}

interface Stat {
  ppid: number;
  pgrp: number;
  startTime: number;
}

function stat(pid: number): Stat | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: read after the last ')'.
    const rest = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); field N is rest[N - 3].
    if (rest[0] === 'Z') return undefined; // a zombie is gone for our purposes
    return { ppid: Number(rest[1]), pgrp: Number(rest[2]), startTime: Number(rest[19]) };
  } catch {
    return undefined;
  }
}

function cmdline(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return undefined;
  }
}

/** The identity of a live process, or undefined when no such process runs. */
export function identify(pid: number): ProcessIdentity | undefined {
  const s = stat(pid);
  const c = cmdline(pid);
  if (!s || c === undefined) return undefined;
  return { pid, startTime: s.startTime, cmdline: c };
}

/** True when the very process recorded still runs (same pid, same start, same command line). */
export function stillRuns(p: ProcessIdentity): boolean {
  const now = identify(p.pid);
  return !!now && now.startTime === p.startTime && now.cmdline === p.cmdline;
}

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
}

/** Every live descendant of `root` (children, grandchildren...), parents before children. */
export function descendants(root: number): ProcessIdentity[] {
  const children = new Map<number, number[]>();
  for (const pid of allPids()) {
    const s = stat(pid);
    if (!s) continue;
    const list = children.get(s.ppid) ?? [];
    list.push(pid);
    children.set(s.ppid, list);
  }
  const out: ProcessIdentity[] = [];
  const queue = [...(children.get(root) ?? [])];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    const id = identify(pid);
    if (id) out.push(id);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** /proc/net/tcp{,6} spellings of the local addresses a bind to `host` conflicts with (itself and the wildcards). */
function conflictingAddresses(host: string): Set<string> {
  const v4 = host
    .split('.')
    .reverse()
    .map((b) => Number(b).toString(16).padStart(2, '0'))
    .join('')
    .toUpperCase();
  return new Set([v4, '00000000', `0000000000000000FFFF0000${v4}`, '00000000000000000000000000000000']);
}

/**
 * Inodes of TCP sockets that keep a listener from binding `host:port`:
 * listeners, and connections whose local end took the port (an ephemeral
 * port of an outgoing connection), on that address or a wildcard.
 * TIME_WAIT does not count: servers bind with SO_REUSEADDR.
 */
function boundInodes(port: number, host: string, protocol: Protocol = 'tcp'): Set<string> {
  const addrs = conflictingAddresses(host);
  if (protocol === 'udp') return socketInodes(port, (_state, addr) => addrs.has(addr), UDP_FILES);
  return socketInodes(port, (state, addr) => state !== '06' && addrs.has(addr));
}

export type Protocol = 'tcp' | 'udp';
const TCP_FILES = ['/proc/net/tcp', '/proc/net/tcp6'];
const UDP_FILES = ['/proc/net/udp', '/proc/net/udp6'];

/** Inodes of TCP sockets in LISTEN state on `port` (any address, IPv4 and IPv6). */
function listeningInodes(port: number): Set<string> {
  return socketInodes(port, (state) => state === '0A');
}

function socketInodes(port: number, keep: (state: string, addr: string) => boolean, files = TCP_FILES): Set<string> {
  const inodes = new Set<string>();
  for (const file of files) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address is hex "ADDR:PORT"; state 0A is LISTEN, 06 TIME_WAIT; field 9 is the inode.
      if (f.length < 10 || f[9] === '0') continue;
      const [addr, p] = f[1]!.split(':');
      if (parseInt(p!, 16) === port && keep(f[3]!, addr!)) inodes.add(f[9]!);
    }
  }
  return inodes;
}

/** True when one of `pids` holds a listening socket on `port` (reads only those processes' descriptors). */
export function heldBy(port: number, pids: Iterable<number>): boolean {
  const inodes = listeningInodes(port);
  if (inodes.size === 0) return false;
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m && inodes.has(m[1]!)) return true;
      } catch {
        /* closed meanwhile */
      }
    }
  }
  return false;
}

/**
 * Pids that hold a TCP socket bound to `port` in this network namespace (a
 * listener or a connection using it as its local port). Empty when nobody
 * does, or when the holder's file descriptors cannot be read (another
 * user's process).
 */
export function portHolders(port: number, host = '127.0.0.1', protocol: Protocol = 'tcp'): ProcessIdentity[] {
  const inodes = boundInodes(port, host, protocol);
  if (inodes.size === 0) return [];
  const holders: ProcessIdentity[] = [];
  for (const pid of allPids()) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target = '';
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m && inodes.has(m[1]!)) {
        const id = identify(pid);
        if (id) holders.push(id);
        break;
      }
    }
  }
  return holders;
}

/** True when a socket holds `port` so that a listener cannot bind it (whether or not we may read whose). */
export function portInUse(port: number, host = '127.0.0.1', protocol: Protocol = 'tcp'): boolean {
  return boundInodes(port, host, protocol).size > 0;
}

/** "pid 123 (etcd --data-dir ...)" for messages; long command lines are cut. */
export function describe(p: ProcessIdentity): string {
  const c = p.cmdline.length > 160 ? `${p.cmdline.slice(0, 157)}...` : p.cmdline;
  return `pid ${p.pid} (${c})`;
}
