/**
 * Boot-file serving throughput on loopback: Ironflow's TFTP server vs Debian
 * tftpd-hpa, and Ironflow's HTTP /files/ vs Python's http.server, for the
 * same 30 MiB file, 1 client and 20 concurrent clients. Prints MB/s (median
 * of the rounds) and the ratio Ironflow / peer.
 *
 * Same client for both servers of a pair: node-tftp's client (blksize 65464,
 * windowsize 1, because tftpd-hpa does not implement RFC 7440 windows) for
 * TFTP, undici for HTTP. A second TFTP row asks both for windowsize 2, which
 * only it supports. Every server runs in its own process, so the clients'
 * event loop does not slow down the server it measures.
 *
 * Run (from the repository root):
 *   npm run bench -- tftp [--rounds 3] [--clients 20] [--mib 30]
 * or by hand (tsc emits even if other folders have type errors):
 *   npx tsc -p tsconfig.json --outDir /tmp/bench-out; \
 *   NODE_PATH=$PWD/node_modules node /tmp/bench-out/bench/tftp.js [--rounds 3] [--clients 20] [--mib 30]
 *
 * Needs: /usr/sbin/in.tftpd (tftpd-hpa), python3. Run as root or as a user that
 * may run in.tftpd (it drops to user "tftp", so the file is made world-readable).
 */
import { spawn, fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as tftp from 'node-tftp';
import pino from 'pino';
import { request } from 'undici';
import { SessionStore } from '../activities/agent/session-store';
import { start as startHttpBoot } from '../activities/pxe/http-boot';
import { startTftpServer } from '../activities/pxe/tftp-server';
import { compare, freePort } from './lib/measure';

const FILE = 'bench.bin';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : dflt;
  if (!Number.isInteger(v) || v < 1 || v > 1000) throw new Error(`--${name} must be an integer 1..1000`);
  return v;
}

/** Child mode: one Ironflow server in this process, its port sent to the parent. */
async function child(kind: string, root: string): Promise<void> {
  const log = pino({ level: 'warn' });
  if (kind === 'tftp') {
    const s = await startTftpServer({ host: '127.0.0.1', port: 0, root, log });
    process.send!({ port: s.port });
  } else {
    const s = await startHttpBoot({ host: '127.0.0.1', port: 0, filesDir: root, sessions: await SessionStore.open(), log });
    process.send!({ port: s.port });
  }
}

function forkServer(kind: 'tftp' | 'http', root: string): Promise<{ proc: ChildProcess; port: number }> {
  const proc = fork(__filename, ['--child', kind, root], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Ironflow ${kind} server did not start within 10 s`)), 10_000);
    proc.once('message', (m: { port: number }) => {
      clearTimeout(timer);
      resolve({ proc, port: m.port });
    });
    proc.once('exit', (code) => reject(new Error(`Ironflow ${kind} server exited with ${code}`)));
  });
}

function tftpDownload(port: number, windowSize: number): () => Promise<number> {
  return () =>
    new Promise((resolve, reject) => {
      // timeout 250: node-tftp's client sends its retransmit timeout (ms) as the RFC 2349 "timeout" option (seconds,
      // 1..255); tftpd-hpa answers any larger value with "Unsupported option(s)" and the transfer falls back to
      // 512-byte blocks. 250 is valid for both (250 ms for the client, ignored by Ironflow's server).
      const client = tftp.createClient({ host: '127.0.0.1', port, blockSize: 65464, windowSize, retries: 5, timeout: 250 });
      let n = 0;
      client
        .createGetStream(FILE)
        .on('data', (c: Buffer) => (n += c.length))
        .on('error', reject)
        .on('end', () => resolve(n));
    });
}

function httpDownload(port: number): () => Promise<number> {
  return async () => {
    const res = await request(`http://127.0.0.1:${port}/files/${FILE}`);
    if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode} from port ${port}`);
    let n = 0;
    for await (const c of res.body) n += (c as Buffer).length;
    return n;
  };
}

/** Waits until a spawned server answers one download (tftpd-hpa and python print nothing when ready). */
async function firstAnswer(download: () => Promise<number>, what: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    try {
      await download();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`${what} did not answer within 5 s`);
}

async function main(): Promise<void> {
  const rounds = arg('rounds', 3);
  const many = arg('clients', 20);
  const mib = arg('mib', 30);
  const bytes = mib * 1024 * 1024;
  const dir = mkdtempSync(path.join(tmpdir(), 'ironflow-bench-'));
  const root = path.join(dir, 'files');
  const procs: ChildProcess[] = [];
  try {
    // tftpd-hpa drops to user "tftp": the tree must be readable by others.
    chmodSync(dir, 0o755);
    mkdirSync(root, { mode: 0o755 });
    writeFileSync(path.join(root, FILE), randomBytes(bytes), { mode: 0o644 });

    const ironTftp = await forkServer('tftp', root);
    procs.push(ironTftp.proc);
    const hpaPort = await freePort('udp');
    // -L: stay in the foreground (standalone, one fork per transfer); -s: chroot to the root.
    const hpa = spawn('/usr/sbin/in.tftpd', ['-L', '-s', root, '-a', `127.0.0.1:${hpaPort}`], { stdio: 'inherit' });
    procs.push(hpa);
    await firstAnswer(tftpDownload(hpaPort, 1), 'tftpd-hpa');

    const ironHttp = await forkServer('http', root);
    procs.push(ironHttp.proc);
    const pyPort = await freePort('tcp');
    // python serves the parent dir so that /files/<name> is the same URL on both servers.
    const py = spawn('python3', ['-m', 'http.server', '--bind', '127.0.0.1', '--directory', dir, String(pyPort)], { stdio: 'ignore' });
    procs.push(py);
    await firstAnswer(httpDownload(pyPort), 'python http.server');

    // One untimed download from each server first, so no figure includes JIT warm-up or a cold page cache.
    for (const warm of [tftpDownload(ironTftp.port, 1), tftpDownload(hpaPort, 1), httpDownload(ironHttp.port), httpDownload(pyPort)]) await warm();

    const rows: { what: string; clients: number; iron: number; peer: number; peerName: string }[] = [];
    for (const clients of [1, many]) {
      const cmp = (a: () => Promise<number>, b: () => Promise<number>) => compare({ clients, rounds, bytesEach: bytes, a, b });
      const t1 = await cmp(tftpDownload(ironTftp.port, 1), tftpDownload(hpaPort, 1));
      rows.push({ what: 'TFTP blksize 65464 windowsize 1', clients, iron: t1.a, peer: t1.b, peerName: 'tftpd-hpa' });
      const t2 = await cmp(tftpDownload(ironTftp.port, 2), tftpDownload(hpaPort, 2));
      rows.push({ what: 'TFTP blksize 65464 windowsize 2', clients, iron: t2.a, peer: t2.b, peerName: 'tftpd-hpa (ignores windowsize: runs 1)' });
      const h = await cmp(httpDownload(ironHttp.port), httpDownload(pyPort));
      rows.push({ what: 'HTTP GET /files/', clients, iron: h.a, peer: h.b, peerName: 'python3 http.server' });
    }

    console.log(`\n${mib} MiB file on loopback, median of ${rounds} rounds, MB/s = 10^6 bytes/s (aggregate over clients)\n`);
    console.log(['what'.padEnd(34), 'clients', 'ironflow'.padStart(9), 'peer'.padStart(9), 'ratio'.padStart(7), ' peer'].join(' '));
    for (const r of rows) {
      const ratio = (r.iron / r.peer).toFixed(2) + 'x';
      console.log([r.what.padEnd(34), String(r.clients).padStart(7), r.iron.toFixed(1).padStart(9), r.peer.toFixed(1).padStart(9), ratio.padStart(7), ' ' + r.peerName].join(' '));
    }
  } finally {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') {
  child(process.argv[3]!, process.argv[4]!).catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
