/** Small helpers the benchmarks share: a free loopback port, timing, and the median of rounds. */
import * as dgram from 'node:dgram';
import * as net from 'node:net';

/** A port the kernel just handed out (bound then released), for servers that cannot bind port 0 themselves. */
export async function freePort(kind: 'udp' | 'tcp'): Promise<number> {
  if (kind === 'udp') {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    const { port } = s.address();
    await new Promise<void>((r) => s.close(() => r()));
    return port;
  }
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** Median of the rounds' figures. Example: [3, 1, 2] -> 2; [4, 1, 3, 2] -> 2.5. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Two contenders measured round by round in alternation (a, b, a, b, ...), so
 * load from other processes on a shared machine falls on both alike.
 */
export async function compare(opts: {
  clients: number;
  rounds: number;
  bytesEach: number;
  a: () => Promise<number>;
  b: () => Promise<number>;
}): Promise<{ a: number; b: number; aRounds: number[]; bRounds: number[] }> {
  const aRounds: number[] = [];
  const bRounds: number[] = [];
  for (let r = 0; r < opts.rounds; r++) {
    aRounds.push(...(await throughput({ ...opts, rounds: 1, download: opts.a })).rounds);
    bRounds.push(...(await throughput({ ...opts, rounds: 1, download: opts.b })).rounds);
  }
  return { a: median(aRounds), b: median(bRounds), aRounds, bRounds };
}

/**
 * Aggregate MB/s (10^6 bytes per second) of `clients` concurrent downloads of
 * `bytesEach`, over `rounds` rounds; the median round counts. Each download
 * must return exactly bytesEach bytes or the run fails (a fast wrong answer
 * is no figure). Example: 20 clients x 31457280 B in 1.2 s -> 524 MB/s.
 */
export async function throughput(opts: {
  clients: number;
  rounds: number;
  bytesEach: number;
  download: () => Promise<number>;
}): Promise<{ mbps: number; rounds: number[] }> {
  const figures: number[] = [];
  for (let r = 0; r < opts.rounds; r++) {
    const t0 = process.hrtime.bigint();
    const got = await Promise.all(Array.from({ length: opts.clients }, () => opts.download()));
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    const bad = got.find((n) => n !== opts.bytesEach);
    if (bad !== undefined) throw new Error(`a download returned ${bad} bytes, expected ${opts.bytesEach}`);
    figures.push((opts.clients * opts.bytesEach) / 1e6 / s);
  }
  return { mbps: median(figures), rounds: figures };
}
