import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import * as tftp from 'node-tftp';
import pino from 'pino';
import { startTftpServer, type TftpServer, type TftpTransferRecord } from '../../activities/pxe/tftp-server';

const run = promisify(execFile);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** tftp-hpa's client: exit status is 0 even on error, so the verdict is its output plus the file it wrote. */
async function hpaGet(port: number, remote: string, local: string): Promise<{ ok: boolean; output: string }> {
  rmSync(local, { force: true });
  const { stdout, stderr } = await run('tftp', ['-m', 'binary', '127.0.0.1', String(port), '-c', 'get', remote, local], { timeout: 20_000 });
  const output = stdout + stderr;
  return { ok: !/error|timed out/i.test(output) && existsSync(local), output };
}

function nodeGet(port: number, remote: string): Promise<Buffer> {
  const client = tftp.createClient({ host: '127.0.0.1', port, blockSize: 65464, retries: 2, timeout: 1000 });
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    client
      .createGetStream(remote)
      .on('data', (c: Buffer) => chunks.push(c))
      .on('error', reject)
      .on('end', () => resolve(Buffer.concat(chunks)));
  });
}

describe('Ironflow TFTP server (node-tftp, hardened) with real TFTP clients', () => {
  let dir: string;
  let root: string;
  let server: TftpServer;
  const logLines: Record<string, unknown>[] = [];
  const transfers: TftpTransferRecord[] = [];
  const kernel = randomBytes(3 * 1024 * 1024 + 4321);
  const small = randomBytes(200 * 1024 + 7);
  let good: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ironflow-tftp-'));
    root = path.join(dir, 'root');
    mkdirSync(path.join(root, 'sub'), { recursive: true });
    writeFileSync(path.join(root, 'ironflow-agent.vmlinuz'), kernel);
    writeFileSync(path.join(root, 'sub', 'undionly.kpxe'), small);
    writeFileSync(path.join(dir, 'secret.txt'), 'outside the root\n');
    symlinkSync(path.join(dir, 'secret.txt'), path.join(root, 'escape.txt'));
    symlinkSync('sub/undionly.kpxe', path.join(root, 'inside-link.kpxe'));
    good = path.join(dir, 'good.out');
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString().split('\n').filter(Boolean)) logLines.push(JSON.parse(l));
        cb();
      },
    });
    server = await startTftpServer({ host: '127.0.0.1', port: 0, root, log: pino({ level: 'info' }, sink) });
    server.events.on('transfer', (r: TftpTransferRecord) => transfers.push(r));
  });
  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function expectStillServing() {
    const r = await hpaGet(server.port, 'sub/undionly.kpxe', good);
    expect(r).toMatchObject({ ok: true });
    expect(sha256(readFileSync(good))).toBe(sha256(small));
  }

  it('sends a file byte for byte to tftp-hpa (512-byte blocks) and to node-tftp (blksize 65464)', async () => {
    await expectStillServing();
    const viaNode = await nodeGet(server.port, 'ironflow-agent.vmlinuz');
    expect(sha256(viaNode)).toBe(sha256(kernel));
    // A symlink that stays inside the root is fine.
    expect(sha256(await nodeGet(server.port, 'inside-link.kpxe'))).toBe(sha256(small));
  });

  it('logs each transfer with file, client, bytes and duration, and negotiates the large block size', async () => {
    await nodeGet(server.port, 'ironflow-agent.vmlinuz');
    await new Promise((r) => setImmediate(r));
    const line = logLines.filter((l) => l.msg === 'tftp transfer' && l.file === 'ironflow-agent.vmlinuz').pop();
    expect(line).toMatchObject({ file: 'ironflow-agent.vmlinuz', bytes: kernel.length, blockSize: 65464, outcome: 'sent' });
    expect(line!.client).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(typeof line!.ms).toBe('number');
  });

  it.each([
    ['a parent-directory path', '../secret.txt'],
    ['a path that climbs out after a subdirectory', 'sub/../../secret.txt'],
    ['an absolute path', '/etc/passwd'],
    ['an absolute path to a file inside the root', `${'/'}sub/undionly.kpxe`],
    ['a symlink that points out of the root', 'escape.txt'],
  ])('refuses %s (%s) and keeps serving good files afterwards', async (_what, remote) => {
    const r = await hpaGet(server.port, remote, path.join(dir, 'bad.out'));
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/Error code \d+/);
    await expect(nodeGet(server.port, remote)).rejects.toThrow();
    await expectStillServing();
  });

  it('records the symlink escape as refused, never sent', async () => {
    await hpaGet(server.port, 'escape.txt', path.join(dir, 'bad.out'));
    await new Promise((r) => setTimeout(r, 50));
    expect(transfers.filter((t) => t.file === 'escape.txt').map((t) => t.outcome)).toEqual(expect.arrayContaining(['refused']));
    expect(transfers.some((t) => t.file === 'escape.txt' && t.outcome === 'sent')).toBe(false);
  });

  it('refuses writes (read-only) and creates no file', async () => {
    const src = path.join(dir, 'upload.bin');
    writeFileSync(src, 'x'.repeat(1000));
    const { stdout, stderr } = await run('tftp', ['-m', 'binary', '127.0.0.1', String(server.port), '-c', 'put', src, 'uploaded.bin'], { timeout: 20_000 });
    expect(stdout + stderr).toMatch(/Error code/);
    expect(existsSync(path.join(root, 'uploaded.bin'))).toBe(false);
    await expectStillServing();
  });

  it('answers a missing file with "File not found"', async () => {
    const r = await hpaGet(server.port, 'nope.bin', path.join(dir, 'bad.out'));
    expect(r.output).toMatch(/Error code 1/);
  });
});
