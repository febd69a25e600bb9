/**
 * A simulated server's network boot, with the retry behaviour of real boot
 * firmware, so a lost packet costs seconds, not the agent deadline:
 *
 * - TFTP (the PXE ROM's path for the kernel): every packet is retransmitted
 *   on a timer and the transfer is given up after a bounded silence
 *   (`tftpTimeoutMs` x `tftpRetries`, ~9 s by default, as iPXE's retry timer
 *   gives up after ~10 s without an answer). A read request that gets no
 *   answer is sent again the same way.
 * - HTTP (iPXE's path for scripts and the initramfs): a fetch that does not
 *   get its headers in time, is reset, or answers an error fails the script
 *   command, and the script's own `|| goto` decides (./ipxe.ts).
 * - Whatever fails, the attempt ends: the caller (./server.ts) falls through
 *   to the next boot device and, as a BIOS with boot retry does, starts the
 *   boot order again after `bootRetryDelayMs`. Nothing waits silently.
 *
 * The kernel command line of the script is passed to the agent unchanged
 * (the agent's token and boot id ride on it).
 *
 * Simulated servers have no DHCP exchange: on loopback there is no broadcast
 * domain and the plane serves no DHCP for them; they start where DHCP would
 * leave iPXE, at the chain script. QEMU lab machines do real DHCP in real
 * iPXE (lab/qemu).
 */
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { setTimeout as sleep } from 'node:timers/promises';
import * as tftp from 'node-tftp';
import { PXE_PATHS } from '../../api/pxe';
import { runIpxeScript, type IpxeOutcome } from './ipxe';

export interface PxeEndpoints {
  /** Base URL of Ironflow's provisioning HTTP server. */
  httpUrl: string;
  tftp: { host: string; port: number };
}

export interface FirmwareTimings {
  /**
   * TFTP block size asked for (RFC 2348; the server caps it). The simulated
   * NIC is on loopback (MTU 65536), so it asks for the largest block, as a
   * client on a jumbo-frame network would. At Ethernet's 1432 an 8 MB
   * kernel is ~5,800 lock-step round trips: with 50 servers booting at once
   * on 2 shared cores, transfers took 20-30 s each and many timed out
   * (bench/lab-scale.ts). QEMU lab machines run real iPXE at 1432.
   */
  tftpBlockSize: number;
  /** TFTP retransmission timer (fixed; node-tftp has no backoff). */
  tftpTimeoutMs: number;
  /** Retransmissions of one packet before the transfer is given up. */
  tftpRetries: number;
  /** An HTTP fetch must get its response headers within this. */
  httpHeadersTimeoutMs: number;
  /** A whole file (kernel, initramfs) must arrive within this. */
  httpFileTimeoutMs: number;
  /** After every boot device failed: wait this long, then the boot order again. 0: halt ("no boot device"). */
  bootRetryDelayMs: number;
}

export const DEFAULT_FIRMWARE: FirmwareTimings = {
  tftpBlockSize: 65_464,
  tftpTimeoutMs: 1_000,
  tftpRetries: 8,
  httpHeadersTimeoutMs: 15_000,
  httpFileTimeoutMs: 120_000,
  // Dell's "Boot Sequence Retry" waits 30 s; the lab keeps the same order of magnitude.
  bootRetryDelayMs: 30_000,
};

export interface NetbootAttempt {
  outcome: IpxeOutcome;
  /** Set when a kernel and initrd were loaded and `boot` ran. */
  kernelArgs?: string;
  kernelBytes?: number;
  initrdBytes?: number;
  /** The per-MAC script answered 404: this machine is unknown to Ironflow. */
  unknownMac: boolean;
  /** What the per-MAC script was for (from its `# Ironflow: ... mode <m>` header), when seen. */
  mode?: string;
  ms: number;
}

function tftpGet(o: { host: string; port: number; blockSize: number; timeoutMs: number; retries: number }, remote: string, local: string): Promise<number> {
  const client = tftp.createClient({ host: o.host, port: o.port, blockSize: o.blockSize, retries: o.retries, timeout: o.timeoutMs });
  // node-tftp's get stream is not a complete stream.Readable (pipeline reports a
  // premature close): write it out by its events, without holding the file in memory.
  return new Promise((resolve, reject) => {
    const out = createWriteStream(local);
    let bytes = 0;
    const fail = (err: Error) => {
      out.destroy();
      reject(new Error(`TFTP ${remote}: ${err.message}`));
    };
    out.on('error', fail);
    client
      .createGetStream(remote)
      .on('data', (c: Buffer) => {
        bytes += c.length;
        out.write(c);
      })
      .on('error', fail)
      .on('end', () => out.end(() => resolve(bytes)));
  });
}

async function httpGet(url: string, timings: FirmwareTimings, signal: AbortSignal | undefined, wholeMs: number): Promise<Response> {
  const headers = AbortSignal.timeout(timings.httpHeadersTimeoutMs);
  const whole = AbortSignal.timeout(wholeMs);
  const res = await fetch(url, { signal: AbortSignal.any([headers, whole, ...(signal ? [signal] : [])]) }).catch((err: Error) => {
    const cause = (err.cause as Error | undefined)?.message;
    throw new Error(`GET ${url}: ${err.name === 'TimeoutError' ? 'timed out' : err.message}${cause ? ` (${cause})` : ''}`);
  });
  if (!res.ok) {
    await res.body?.cancel();
    const e = new Error(`GET ${url}: HTTP ${res.status}`) as Error & { status: number };
    e.status = res.status;
    throw e;
  }
  return res;
}

/**
 * One network boot attempt: the chain script DHCP would name, then whatever
 * the scripts say, up to `boot`, `sanboot` or an exit. Never throws; never
 * waits longer than the timings allow per fetch.
 */
export async function netbootOnce(o: {
  mac: string;
  pxe: PxeEndpoints;
  /** Where this server's packets go: a different origin/TFTP address when its path is lossy (./pxe-fault-path.ts). */
  via?: { httpOrigin?: string; tftp?: { host: string; port: number } };
  bootDir: string;
  timings: FirmwareTimings;
  signal?: AbortSignal;
  log?: (line: string) => void;
}): Promise<NetbootAttempt> {
  const t0 = Date.now();
  const base = new URL(o.pxe.httpUrl);
  const route = (url: string) => {
    const u = new URL(url);
    if (o.via?.httpOrigin && u.origin === base.origin) return o.via.httpOrigin + u.pathname + u.search;
    return url;
  };
  const attempt: Omit<NetbootAttempt, 'outcome' | 'ms'> = { unknownMac: false };
  const filesPath = `${base.pathname.replace(/\/+$/, '')}${PXE_PATHS.file('')}`;
  // Scripts name the address the machine reached (the plane's, or this server's lossy path's).
  const isPlaneFile = (url: string) => {
    const u = new URL(url);
    return (u.origin === base.origin || u.origin === o.via?.httpOrigin) && u.pathname.startsWith(filesPath);
  };
  const outcome = await runIpxeScript(`#!ipxe\nchain ${o.pxe.httpUrl.replace(/\/+$/, '')}${PXE_PATHS.chainScript}\n`, {
    vars: { mac: o.mac.toLowerCase(), platform: 'pcbios', buildarch: 'x86_64', manufacturer: 'Ironflow Lab' },
    signal: o.signal,
    sleep: (ms) => sleep(ms, undefined, { signal: o.signal }).catch(() => undefined),
    echo: (t) => o.log?.(`ipxe: ${t}`),
    fetchScript: async (url) => {
      try {
        const text = await (await httpGet(route(url), o.timings, o.signal, o.timings.httpHeadersTimeoutMs)).text();
        attempt.mode = /^# Ironflow: \S+ mode (\S+)/m.exec(text)?.[1] ?? attempt.mode;
        return text;
      } catch (err) {
        if ((err as { status?: number }).status === 404 && url.includes('/boot/')) attempt.unknownMac = true;
        throw err;
      }
    },
    loadKernel: async (url, args) => {
      const local = join(o.bootDir, 'kernel');
      // Files Ironflow serves come over TFTP, as a PXE ROM fetches its boot file; others over HTTP.
      if (isPlaneFile(url)) {
        const tftpAt = o.via?.tftp ?? o.pxe.tftp;
        o.log?.(`firmware: kernel ${url} over TFTP from ${tftpAt.host}:${tftpAt.port}`);
        attempt.kernelBytes = await tftpGet({ ...tftpAt, blockSize: o.timings.tftpBlockSize, timeoutMs: o.timings.tftpTimeoutMs, retries: o.timings.tftpRetries }, decodeURIComponent(new URL(url).pathname.slice(filesPath.length)), local);
      } else {
        attempt.kernelBytes = await download(route(url), local, o.timings, o.signal);
      }
      attempt.kernelArgs = args;
    },
    loadInitrd: async (url) => {
      attempt.initrdBytes = await download(route(url), join(o.bootDir, 'initrd'), o.timings, o.signal);
    },
  });
  return { ...attempt, outcome, ms: Date.now() - t0 };
}

async function download(url: string, local: string, timings: FirmwareTimings, signal: AbortSignal | undefined): Promise<number> {
  const res = await httpGet(url, timings, signal, timings.httpFileTimeoutMs);
  let bytes = 0;
  const body = Readable.fromWeb(res.body! as WebReadableStream<Uint8Array>);
  body.on('data', (c: Buffer) => (bytes += c.length));
  await pipeline(body, createWriteStream(local));
  return bytes;
}
