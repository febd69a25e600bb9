/**
 * What a deploy's verify regions must hash to, read by the plane from the
 * image (activities/agent/image-evidence.ts) over real HTTP on loopback: a
 * server with Range support is read region by region, one without is read
 * once from the start, one that gives no size yields the first 64 KiB, and
 * no connection outlives the read.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { VerifyRegions } from '../../api/agent';
import { imageSource } from '../../activities/agent/image-evidence';

const image = randomBytes(5 * 1024 * 1024 + 333);
const expectedHash = (v: VerifyRegions) => {
  const h = createHash('sha256');
  for (const r of v.regions) h.update(image.subarray(r.offset, r.offset + r.length));
  return h.digest('hex');
};

type Mode = 'range' | 'no-range' | 'no-size';
let server: http.Server;
let base: string;
const requests: { method: string; range?: string }[] = [];
let open = 0;
const dir = mkdtempSync(join(tmpdir(), 'image-evidence-'));

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const mode = req.url!.slice(1) as Mode;
    requests.push({ method: req.method!, range: req.headers.range });
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (mode === 'range' && m) {
      const [start, end] = [Number(m[1]), Math.min(Number(m[2]), image.length - 1)];
      res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${image.length}`, 'content-length': end - start + 1 });
      return res.end(image.subarray(start, end + 1));
    }
    if (mode === 'no-size') {
      // Chunked, no Content-Length, even for HEAD.
      res.writeHead(200, { 'transfer-encoding': 'chunked' });
      if (req.method === 'HEAD') return res.end();
      return res.end(image);
    }
    res.writeHead(200, { 'content-length': image.length });
    res.end(req.method === 'HEAD' ? undefined : image);
  });
  server.on('connection', (s) => {
    open++;
    s.on('close', () => open--);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  requests.length = 0;
});

const source = imageSource({ filesDir: dir, httpPort: () => 1 });
const connectionsGone = async () => {
  for (let i = 0; i < 50 && open > 0; i++) await new Promise((r) => setTimeout(r, 20));
  return open;
};

test('a server with Range: HEAD for the size, then one 64 KiB range request per region', async () => {
  const ev = await source.evidence(`${base}/range`);
  expect(ev.imageBytes).toBe(image.length);
  expect(ev.verify.regions).toHaveLength(4);
  expect(ev.sampleSha256).toBe(expectedHash(ev.verify));
  expect(requests.map((r) => r.method)).toEqual(['HEAD', 'GET', 'GET', 'GET', 'GET']);
  expect(requests.slice(1).every((r) => /^bytes=\d+-\d+$/.test(r.range ?? ''))).toBe(true);
  expect(await connectionsGone()).toBe(0);
});

test('a server that ignores Range: read once from the start, the regions picked out of the stream', async () => {
  const ev = await source.evidence(`${base}/no-range`);
  expect(ev.sampleSha256).toBe(expectedHash(ev.verify));
  expect(ev.imageBytes).toBe(image.length);
  expect(await connectionsGone()).toBe(0);
});

test('a server that gives no size: the first 64 KiB only', async () => {
  const ev = await source.evidence(`${base}/no-size`);
  expect(ev.verify).toEqual({ regions: [{ offset: 0, length: 65536 }] });
  expect(ev.imageBytes).toBeUndefined();
  expect(ev.sampleSha256).toBe(expectedHash(ev.verify));
  expect(await connectionsGone()).toBe(0);
});

test('an image in the plane\'s files folder (a /files/ URL on the plane\'s port) is read from the file; a symlink out of it is refused', async () => {
  writeFileSync(join(dir, 'os.img'), image);
  const local = imageSource({ filesDir: dir, httpPort: () => 8080 });
  const ev = await local.evidence('http://10.99.0.1:8080/files/os.img');
  expect(ev.imageBytes).toBe(image.length);
  expect(ev.sampleSha256).toBe(expectedHash(ev.verify));
  const outside = mkdtempSync(join(tmpdir(), 'image-evidence-outside-'));
  try {
    writeFileSync(join(outside, 'secret.img'), 'outside the files folder');
    symlinkSync(join(outside, 'secret.img'), join(dir, 'escape.img'));
    await expect(local.evidence('http://10.99.0.1:8080/files/escape.img')).rejects.toThrow(/not a file in the plane's files folder \(escapes-root\)/);
    await expect(local.evidence('http://10.99.0.1:8080/files/..%2f..%2fetc%2fpasswd')).rejects.toThrow(/not a file in the plane's files folder \(traversal\)/);
  } finally {
    rmSync(outside, { recursive: true, force: true });
  }
});
