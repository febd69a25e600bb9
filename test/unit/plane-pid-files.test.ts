/**
 * Process identity and the plane's pid files, on real processes: a leftover
 * of a dead plane is ended by pid only when that pid still has the recorded
 * start time and command line; anything else that holds the pid now is left
 * alone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { descendants, heldBy, identify, portHolders, portInUse, stillRuns } from '../../workers/embedded/proc';
import { AlreadyRunningError, claimRunFile } from '../../workers/embedded/run-file';

const spawned: ChildProcess[] = [];
function sleeper(): ChildProcess {
  const c = spawn('sleep', ['300'], { stdio: 'ignore' });
  spawned.push(c);
  return c;
}
afterAll(() => {
  for (const c of spawned) c.kill('SIGKILL');
});

describe('process identity', () => {
  it('a process is the recorded one only with the same pid, start time and command line', async () => {
    const c = sleeper();
    await sleep(100);
    const id = identify(c.pid!)!;
    expect(id.cmdline).toBe('sleep 300');
    expect(stillRuns(id)).toBe(true);
    expect(stillRuns({ ...id, startTime: id.startTime + 1 })).toBe(false);
    expect(stillRuns({ ...id, cmdline: 'sleep 301' })).toBe(false);
    expect(descendants(process.pid).map((d) => d.pid)).toContain(c.pid);
    c.kill('SIGKILL');
    await new Promise((r) => c.once('exit', r));
    expect(stillRuns(id)).toBe(false);
  });

  it('names the process that holds a listening port, and tells whose it is not', async () => {
    const srv = createServer();
    const port = await new Promise<number>((r) => srv.listen(0, '127.0.0.1', () => r((srv.address() as { port: number }).port)));
    try {
      expect(portHolders(port).map((h) => h.pid)).toEqual([process.pid]);
      expect(heldBy(port, [process.pid])).toBe(true);
      expect(heldBy(port, [process.ppid])).toBe(false);
    } finally {
      srv.close();
    }
  });

  it('counts a port an outgoing connection took as its local port as taken (a listener could not bind it)', async () => {
    const srv = createServer((s) => s.on('error', () => undefined));
    const port = await new Promise<number>((r) => srv.listen(0, '127.0.0.1', () => r((srv.address() as { port: number }).port)));
    const client = connect({ port, host: '127.0.0.1' });
    await new Promise((r) => client.once('connect', r));
    try {
      const local = client.localPort!;
      expect(portInUse(local)).toBe(true);
      expect(portHolders(local).map((h) => h.pid)).toContain(process.pid);
      // Only conflicts on the same address or a wildcard count.
      expect(portInUse(local, '10.255.255.254')).toBe(false);
    } finally {
      client.destroy();
      srv.close();
    }
  });

  it('finds who holds a UDP port (TFTP); the same number over TCP is free', async () => {
    const sock = createSocket('udp4');
    const port = await new Promise<number>((r) => sock.bind(0, '127.0.0.1', () => r(sock.address().port)));
    try {
      expect(portInUse(port, '127.0.0.1', 'udp')).toBe(true);
      expect(portHolders(port, '127.0.0.1', 'udp').map((h) => h.pid)).toEqual([process.pid]);
      expect(portInUse(port, '127.0.0.1', 'tcp')).toBe(false);
    } finally {
      sock.close();
    }
  });
});

describe('the run file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ironflow-runfile-'));

  it('refuses while its owner runs, naming the pid', async () => {
    const path = join(dir, 'live.json');
    const held = await claimRunFile(path, { role: 'management plane', stateDir: dir });
    try {
      await expect(claimRunFile(path, { role: 'management plane', stateDir: dir })).rejects.toThrow(AlreadyRunningError);
      await expect(claimRunFile(path, { role: 'management plane', stateDir: dir })).rejects.toThrow(`another Ironflow management plane is running on state dir ${dir}: pid ${process.pid} (`);
    } finally {
      held.release();
    }
    expect(existsSync(path)).toBe(false);
  });

  it("ends a dead owner's recorded leftover by pid, and leaves alone a process whose pid matches but whose command line does not", async () => {
    const leftover = sleeper();
    const bystander = sleeper();
    await sleep(100);
    const path = join(dir, 'stale.json');
    const dead = { pid: 999_999_999, startTime: 1, cmdline: 'node dist/workers/main.js' };
    const impostor = { ...identify(bystander.pid!)!, cmdline: 'etcd --data-dir /somewhere/else' };
    writeFileSync(path, JSON.stringify({ owner: dead, role: 'management plane', children: [identify(leftover.pid!)!, impostor] }));
    const notes: string[] = [];
    const claimed = await claimRunFile(path, { role: 'management plane', stateDir: dir, log: (m) => notes.push(m) });
    try {
      expect(leftover.signalCode ?? (await new Promise((r) => leftover.once('exit', (_c, s) => r(s))))).toBe('SIGTERM');
      expect(notes).toEqual([expect.stringContaining(`ended pid ${leftover.pid} (sleep 300), left running by a management plane (pid 999999999) that died`)]);
      // Negative control: same pid, other command line: not ours, not touched.
      expect(identify(bystander.pid!)?.cmdline).toBe('sleep 300');
      const rec = JSON.parse(readFileSync(path, 'utf8')) as { owner: { pid: number } };
      expect(rec.owner.pid).toBe(process.pid);
    } finally {
      claimed.release();
    }
  });
});
