/**
 * What a deploy's verify regions must hash to: the plane reads the image's
 * bytes at the regions it chose (./evidence.ts) when it starts the session.
 *
 * - An image served from the plane's own files folder (a URL whose path is
 *   /files/<name> on the plane's HTTP port) is read from the file, confined
 *   to that folder like every other read of it.
 * - A remote image is read with HTTP Range requests, one per 64 KiB region.
 *   A server that ignores Range (200 instead of 206) is read once from the
 *   start up to the end of the last region and the regions are picked out
 *   of the stream. A server that gives no size at all: the first 64 KiB only.
 *
 * URLs are shown without their query (pre-signed URLs carry credentials there).
 */
import { createHash } from 'node:crypto';
import { Agent, type Dispatcher, request } from 'undici';
import type { VerifyRegions } from '../../api/agent';
import { openConfined, resolveRoot } from '../pxe/confined-file';
import { chooseImageRegions, type Random, VERIFY_REGION_BYTES } from './evidence';

export interface ImageEvidence {
  verify: VerifyRegions;
  sampleSha256: string;
  /** Known when the file or the server said how big the image is. */
  imageBytes?: number;
}

export interface ImageSource {
  /** Reads the regions of `url` this plane will check a deploy of it against. */
  evidence(url: string, opts?: { signal?: AbortSignal; onProgress?: () => void }): Promise<ImageEvidence>;
}

/** An image the plane could not read: a retryable failure, the message says where and why. */
export class ImageUnreadable extends Error {
  override name = 'ImageUnreadable';
}

export const shownUrl = (url: string) => url.replace(/[?#].*$/, '');

export interface ImageSourceOptions {
  /** The plane's files folder (HTTP /files/). */
  filesDir: string;
  /** The plane's HTTP port: a /files/ URL on this port is read from filesDir. */
  httpPort: () => number | undefined;
  timeoutMs?: number;
  random?: Random;
}

export function imageSource(o: ImageSourceOptions): ImageSource {
  let root: Promise<string> | undefined;
  return {
    async evidence(url, opts = {}) {
      let u: URL;
      try {
        u = new URL(url);
      } catch {
        throw new ImageUnreadable(`image URL ${shownUrl(url)} is not a URL`);
      }
      const port = u.port || (u.protocol === 'https:' ? '443' : '80');
      const signal = AbortSignal.any([AbortSignal.timeout(o.timeoutMs ?? 120_000), ...(opts.signal ? [opts.signal] : [])]);
      if (u.pathname.startsWith('/files/') && port === String(o.httpPort())) {
        root ??= resolveRoot(o.filesDir);
        return localEvidence(await root, decodeURIComponent(u.pathname.slice('/files/'.length)), url, o.random);
      }
      // A dispatcher of its own, destroyed after: no connection of this read outlives it.
      const dispatcher = new Agent({ connections: 2 });
      try {
        return await remoteEvidence(url, { dispatcher, signal }, o.random, opts.onProgress);
      } finally {
        await dispatcher.destroy().catch(() => undefined);
      }
    },
  };
}

async function localEvidence(realRoot: string, name: string, url: string, random?: Random): Promise<ImageEvidence> {
  let file;
  try {
    file = await openConfined(realRoot, name);
  } catch (err) {
    throw new ImageUnreadable(`image ${shownUrl(url)} is not a file in the plane's files folder (${(err as Error).name === 'FileRefused' ? (err as { reason: string }).reason : (err as Error).message})`);
  }
  try {
    const verify = chooseImageRegions(file.size, random);
    const h = createHash('sha256');
    for (const r of verify.regions) {
      const buf = Buffer.alloc(r.length);
      const { bytesRead } = await file.handle.read(buf, 0, r.length, r.offset);
      h.update(buf.subarray(0, bytesRead));
    }
    return { verify, sampleSha256: h.digest('hex'), imageBytes: file.size };
  } finally {
    await file.handle.close();
  }
}

interface Got {
  status: number;
  header(name: string): string | undefined;
  body: AsyncIterable<Uint8Array>;
  /** Ends the request and its connection, read to the end or not. */
  done(): void;
}

/**
 * One request on a connection of its own (`reset`: no keep-alive), so that
 * stopping early never leaves a server writing to a client that stopped
 * reading. Redirects are followed (at most 5), as wget follows them.
 */
interface Conn {
  dispatcher: Dispatcher;
  signal: AbortSignal;
}

async function get(url: string, conn: Conn, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET'): Promise<Got> {
  let res: Dispatcher.ResponseData;
  try {
    res = await request(url, { method, headers, signal: conn.signal, dispatcher: conn.dispatcher, reset: true, maxRedirections: 5 });
  } catch (err) {
    throw new ImageUnreadable(`could not read image ${shownUrl(url)}: ${(err as Error).message}`);
  }
  // Destroying an undici body emits an abort 'error': expected here, not a failure.
  res.body.on('error', () => undefined);
  const done = () => {
    if (!res.body.destroyed) res.body.destroy();
  };
  if (res.statusCode < 200 || res.statusCode >= 300) {
    done();
    throw new ImageUnreadable(`could not read image ${shownUrl(url)}: HTTP ${res.statusCode}`);
  }
  const header = (name: string) => {
    const v = res.headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  return { status: res.statusCode, header, body: res.body, done };
}

/** Size from HEAD, or from a one-byte range request's Content-Range. */
async function remoteSize(url: string, conn: Conn): Promise<number | undefined> {
  const head = await get(url, conn, {}, 'HEAD').catch(() => undefined);
  head?.done();
  const len = head?.header('content-length');
  if (len && /^\d{1,16}$/.test(len)) return Number(len);
  const probe = await get(url, conn, { range: 'bytes=0-0' });
  probe.done();
  const total = /\/(\d{1,16})$/.exec(probe.header('content-range') ?? '')?.[1];
  if (probe.status === 206 && total) return Number(total);
  const plain = probe.header('content-length');
  return probe.status === 200 && plain && /^\d{1,16}$/.test(plain) ? Number(plain) : undefined;
}

/** Reads `res`'s body from byte 0 until `end`, calling `take(offset, chunk)`, then ends the request. */
async function streamUntil(res: Got, end: number, take: (offset: number, chunk: Uint8Array) => void, onProgress?: () => void): Promise<number> {
  let at = 0;
  try {
    for await (const chunk of res.body) {
      take(at, chunk);
      at += chunk.length;
      onProgress?.();
      if (at >= end) break;
    }
  } finally {
    res.done();
  }
  return at;
}

async function readAll(res: Got, max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  await streamUntil(res, max + 1, (_o, c) => parts.push(Buffer.from(c)));
  return Buffer.concat(parts);
}

async function remoteEvidence(url: string, conn: Conn, random?: Random, onProgress?: () => void): Promise<ImageEvidence> {
  const size = await remoteSize(url, conn);
  if (size === undefined) {
    // No size: the first 64 KiB (or the whole image if shorter) is all the plane can pick safely.
    const res = await get(url, conn);
    const chunks: Buffer[] = [];
    const got = await streamUntil(res, VERIFY_REGION_BYTES, (_o, c) => chunks.push(Buffer.from(c)), onProgress);
    const first = Buffer.concat(chunks).subarray(0, Math.min(got, VERIFY_REGION_BYTES));
    const verify = { regions: first.length ? [{ offset: 0, length: first.length }] : [] };
    return { verify, sampleSha256: createHash('sha256').update(first).digest('hex') };
  }
  const verify = chooseImageRegions(size, random);
  const parts: Buffer[] = [];
  for (const r of verify.regions) {
    const res = await get(url, conn, { range: `bytes=${r.offset}-${r.offset + r.length - 1}` });
    if (res.status !== 206) {
      res.done();
      return { verify, sampleSha256: await streamedRegions(url, verify, conn, onProgress), imageBytes: size };
    }
    const body = await readAll(res, r.length);
    if (body.length !== r.length) throw new ImageUnreadable(`image ${shownUrl(url)}: a range request for ${r.length} bytes at ${r.offset} returned ${body.length}`);
    parts.push(body);
    onProgress?.();
  }
  return { verify, sampleSha256: createHash('sha256').update(Buffer.concat(parts)).digest('hex'), imageBytes: size };
}

/** For servers without Range: one pass from the start, the regions copied out of the stream. */
async function streamedRegions(url: string, verify: VerifyRegions, conn: Conn, onProgress?: () => void): Promise<string> {
  const bufs = verify.regions.map((r) => Buffer.alloc(r.length));
  const end = Math.max(0, ...verify.regions.map((r) => r.offset + r.length));
  const res = await get(url, conn);
  const got = await streamUntil(res, end, (at, chunk) => {
    verify.regions.forEach((r, i) => {
      // Overlap of [at, at+chunk) with [r.offset, r.offset+r.length), copied to its place in the region.
      const from = Math.max(at, r.offset);
      const to = Math.min(at + chunk.length, r.offset + r.length);
      if (from < to) bufs[i]!.set(chunk.subarray(from - at, to - at), from - r.offset);
    });
  }, onProgress);
  if (got < end) throw new ImageUnreadable(`image ${shownUrl(url)} ended after ${got} bytes, before the ${end} its size promised`);
  const h = createHash('sha256');
  for (const b of bufs) h.update(b);
  return h.digest('hex');
}
