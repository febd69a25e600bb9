/**
 * The lab's provisioning network for QEMU machines (the measured recipe "PXE boot of a
 * QEMU machine"): a network namespace of its own per run, a bridge with
 * 10.99.0.1/24 and a ULA (nodad, so router advertisements go out at once),
 * one tap per VM on the bridge. Everything network-facing on that network
 * (dnsmasq, QEMU) runs inside the namespace; Ironflow's HTTP server stays on
 * the root namespace's loopback and is reached through a relay:
 *
 *   VM -> 10.99.0.1:<port> (socat in the namespace) -> unix socket
 *      -> socat in the root namespace -> 127.0.0.1:<service port>
 *
 * A unix socket is a file, so it is the one door both namespaces see; a TCP
 * connect from inside the namespace to 127.0.0.1 would hit the namespace's
 * own loopback.
 *
 * stop() (and, failing that, this process's exit) kills every process left in
 * the namespace and deletes it; a run killed outright is swept by the next.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startLabChild, type LabChild } from '../bmc/child';

const run = promisify(execFile);

export const LAB_BRIDGE = 'br0';
export const LAB_GATEWAY = '10.99.0.1';
export const LAB_ULA = 'fd99::1/64';

export interface LabNetwork {
  /** Name of the namespace (unique per run), for `ip netns exec`. */
  netns: string;
  bridge: string;
  /** 10.99.0.1: the address machines reach Ironflow's services at. */
  gateway: string;
  /** Creates tap `name` on the bridge (up); QEMU opens it from inside the namespace. */
  addTap(name: string): Promise<string>;
  /** Serves `gateway:listenPort` inside the namespace by relaying to `127.0.0.1:targetPort` outside. */
  relay(listenPort: number, targetPort: number): Promise<void>;
  /** `ip netns exec <netns> <command> <args...>` as one argv. */
  exec(command: string, args: string[]): [string, string[]];
  stop(): Promise<void>;
}

/** Names the kernel accepts for namespaces and interfaces we create. */
const NAME = /^[a-z0-9-]{1,15}$/;

async function ip(args: string[]): Promise<void> {
  try {
    await run('ip', args, { timeout: 10_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')} failed: ${(e.stderr ?? e.message).trim()}`);
  }
}

/** Pids of the processes whose network namespace is `netns` (the relays, dnsmasq, QEMU of this run). */
function pidsIn(netns: string): number[] {
  try {
    return execFileSync('ip', ['netns', 'pids', netns], { encoding: 'utf8', timeout: 5_000 })
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** Synchronous teardown, also used on process exit (where no promise runs). */
function destroySync(netns: string): void {
  for (const pid of pidsIn(netns)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  try {
    execFileSync('ip', ['netns', 'del', netns], { stdio: 'ignore', timeout: 5_000 });
  } catch {
    // not there (never made, or already deleted)
  }
}

/** Is `pid` a live process? */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Deletes namespaces this module made in runs whose process is gone (killed
 * before its exit hook ran), with whatever they still hold: a stray QEMU
 * would otherwise keep a core busy for good. Namespaces of live runs are
 * left alone.
 */
function sweepStale(): void {
  let names: string[];
  try {
    names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 5_000 }).split('\n').map((l) => l.split(' ')[0]!);
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^ifq-(\d+)-[0-9a-f]{6}$/.exec(n);
    if (m && !alive(Number(m[1]))) destroySync(n);
  }
}

/** True once something accepts connections on the unix socket. */
function unixReady(path: string): Promise<boolean> {
  if (!existsSync(path)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Creates the namespace and its bridge. `workDir` holds the relay sockets and
 * logs. The namespace's name is `ifq-<pid>-<random>`, so parallel runs and a
 * leftover of a crashed run never collide.
 */
export async function startLabNetwork(o: { workDir: string }): Promise<LabNetwork> {
  mkdirSync(o.workDir, { recursive: true });
  sweepStale();
  const netns = `ifq-${process.pid}-${randomBytes(3).toString('hex')}`;
  const children: LabChild[] = [];
  const onExit = () => destroySync(netns);
  process.once('exit', onExit);
  const inNs = (args: string[]) => ip(['-n', netns, ...args]);
  const net: LabNetwork = {
    netns,
    bridge: LAB_BRIDGE,
    gateway: LAB_GATEWAY,
    exec: (command, args) => ['ip', ['netns', 'exec', netns, command, ...args]],
    async addTap(name) {
      if (!NAME.test(name)) throw new Error(`tap name "${name}" must be 1-15 of a-z 0-9 -`);
      await inNs(['tuntap', 'add', 'dev', name, 'mode', 'tap']);
      await inNs(['link', 'set', name, 'master', LAB_BRIDGE]);
      await inNs(['link', 'set', name, 'up']);
      return name;
    },
    async relay(listenPort, targetPort) {
      const sock = join(o.workDir, `relay-${listenPort}.sock`);
      // Outside: the unix socket, forwarded to the service on loopback.
      children.push(
        await startLabChild({
          command: 'socat',
          args: [`UNIX-LISTEN:${sock},fork,unlink-early`, `TCP:127.0.0.1:${targetPort}`],
          logFile: join(o.workDir, `relay-${listenPort}-outside.log`),
          ready: () => unixReady(sock),
          readyTimeoutMs: 5_000,
        }),
      );
      // Inside: the TCP port machines connect to, forwarded to the unix socket.
      const [cmd, args] = net.exec('socat', [`TCP-LISTEN:${listenPort},bind=${LAB_GATEWAY},fork,reuseaddr`, `UNIX-CONNECT:${sock}`]);
      children.push(
        await startLabChild({
          command: cmd,
          args,
          logFile: join(o.workDir, `relay-${listenPort}-inside.log`),
          ready: async () => {
            const { stdout } = await run('ip', ['netns', 'exec', netns, 'ss', '-Htln', `sport = :${listenPort}`], { timeout: 5_000 });
            return stdout.includes(`${LAB_GATEWAY}:${listenPort}`);
          },
          readyTimeoutMs: 5_000,
        }),
      );
    },
    async stop() {
      for (const c of children.splice(0)) await c.stop();
      destroySync(netns);
      process.removeListener('exit', onExit);
    },
  };
  try {
    await ip(['netns', 'add', netns]);
    await inNs(['link', 'set', 'lo', 'up']);
    await inNs(['link', 'add', LAB_BRIDGE, 'type', 'bridge']);
    // No STP forwarding delay: a tap joins and forwards at once (iPXE's first DHCPDISCOVER must not be dropped).
    await inNs(['link', 'set', LAB_BRIDGE, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
    await inNs(['addr', 'add', `${LAB_GATEWAY}/24`, 'dev', LAB_BRIDGE]);
    await inNs(['-6', 'addr', 'add', LAB_ULA, 'dev', LAB_BRIDGE, 'nodad']);
    await inNs(['link', 'set', LAB_BRIDGE, 'up']);
  } catch (err) {
    await net.stop();
    throw new Error(`could not create the lab network namespace ${netns} (needs root / CAP_NET_ADMIN): ${(err as Error).message}`);
  }
  return net;
}
