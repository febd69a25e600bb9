/**
 * Ironflow's TFTP server: npm node-tftp, hardened for an untrusted network.
 *
 * - Read-only: write requests are refused by node-tftp itself (denyPUT)
 *   before any file is created.
 * - Root confined: every read is opened through openConfined, which refuses
 *   `../x`, absolute paths, and symlinks resolving out of the root
 *   (node-tftp's own handler follows them, LAB.md).
 * - A refused or failed transfer ends only that transfer: every request
 *   stream gets an 'error' listener, since an unheard 'error' event would
 *   take the whole process down.
 * - blockSize 65464: node-tftp caps the blksize a client negotiates at its
 *   own blockSize (default 1468), which costs ~15x throughput on loopback.
 * - One log line per transfer: file, client, bytes, ms, blksize.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:dgram';
import * as tftp from 'node-tftp';
import type { Logger } from 'pino';
import { FileRefused, openConfined, resolveRoot } from './confined-file';

/**
 * node-tftp 0.1.6 builds every DATA packet with `new Buffer(4 + n)` (zero-filled)
 * and copies the block into it: at 64 KiB blocks, a 64 KiB memset + memcpy per
 * packet and garbage for the collector. Sending the 4-byte header and the block
 * (a slice of the read buffer) as one datagram from two buffers (sendmsg
 * scatter/gather) does neither. Same wire bytes; every send of a block,
 * retransmissions included, goes through `_sendBlock`. node-tftp is pinned,
 * so this internal cannot move under us unnoticed (the TFTP tests check bytes).
 */
interface NodeTftpRequest {
  _closed: boolean;
  _closing: boolean;
  _port: number;
  _address: string;
  _socket: Socket;
  _sendBlock(block: number, data: Buffer): void;
}
function sendBlocksWithoutCopy(): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Request = require('node-tftp/lib/protocol/request') as { prototype: NodeTftpRequest };
  Request.prototype._sendBlock = function (this: NodeTftpRequest, block: number, data: Buffer) {
    if (this._closed || this._closing) return;
    const header = Buffer.allocUnsafe(4);
    header.writeUInt16BE(3, 0); // opcode DATA
    header.writeUInt16BE(block, 2);
    this._socket.send(data.length ? [header, data] : header, this._port, this._address);
  };
}
sendBlocksWithoutCopy();

export interface TftpServerOptions {
  host: string;
  /** 0 picks a free port (returned by start). Production uses 69. */
  port: number;
  root: string;
  log: Logger;
  /** Upper bound of the negotiated blksize (RFC 2348). */
  blockSize?: number;
  /**
   * Upper bound of the negotiated windowsize (RFC 7440); clients asking for none get 1.
   * Default 2: a window of 4 x 65464-byte blocks (256 KiB) overflows Linux's default
   * 208 KiB UDP receive buffer, the last block of every window is dropped and node-tftp's
   * client times out (measured on loopback); 2 x 64 KiB fits and ran at ~980 MB/s vs ~570 at 1.
   */
  windowSize?: number;
  /** Seconds before a block is sent again. */
  timeoutMs?: number;
  retries?: number;
}

export interface TftpTransferRecord {
  file: string;
  client: string;
  bytes: number;
  ms: number;
  blockSize: number;
  windowSize: number;
  outcome: 'sent' | 'refused' | 'failed';
  reason?: string;
}

export interface TftpServer {
  port: number;
  /** Emits 'transfer' with a TftpTransferRecord after each request ends. */
  events: EventEmitter;
  stop(): Promise<void>;
}

export async function startTftpServer(opts: TftpServerOptions): Promise<TftpServer> {
  const realRoot = await resolveRoot(opts.root);
  const { log } = opts;
  const events = new EventEmitter();
  const blockSize = opts.blockSize ?? 65464;

  const report = (rec: TftpTransferRecord) => {
    if (rec.outcome === 'sent') log.info(rec, 'tftp transfer');
    else log.warn(rec, `tftp transfer ${rec.outcome}`);
    events.emit('transfer', rec);
  };

  const onRequest = (req: tftp.GetStream, res: tftp.PutStream) => {
    const t0 = process.hrtime.bigint();
    const stats = req.stats;
    const client = `${stats.remoteAddress}:${stats.remotePort}`;
    const base = { file: req.file, client, blockSize: stats.blockSize, windowSize: stats.windowSize };
    const ms = () => Number(process.hrtime.bigint() - t0) / 1e6;
    let bytes = 0;
    let failure: string | undefined;
    let refused: string | undefined;
    // Listen first: node-tftp emits 'error' on the request for client aborts and timeouts.
    req.on('error', (err: Error) => {
      failure = err.message;
    });
    req.on('close', () => {
      // node-tftp emits 'close' just before 'error' for a failed transfer: decide on the next tick.
      setImmediate(() => {
        if (refused) report({ ...base, bytes: 0, ms: ms(), outcome: 'refused', reason: refused });
        else if (failure) report({ ...base, bytes, ms: ms(), outcome: 'failed', reason: failure });
        else report({ ...base, bytes, ms: ms(), outcome: 'sent' });
      });
    });
    if (req.method !== 'GET') {
      refused = 'write requests are refused (read-only server)';
      req.abort('Access violation');
      return;
    }
    openConfined(realRoot, req.file).then(
      (file) => {
        res.setSize(file.size);
        // Chunks that are whole multiples of the block size spare node-tftp from concatenating a block split across two chunks.
        const rs = file.handle.createReadStream({ highWaterMark: stats.blockSize * Math.max(1, Math.floor((1 << 20) / stats.blockSize)) });
        rs.on('data', (chunk) => {
          bytes += chunk.length;
        });
        rs.on('error', (err) => {
          failure = `read error: ${err.message}`;
          req.abort('I/O error');
        });
        req.on('error', () => rs.destroy());
        rs.pipe(res);
      },
      (err: unknown) => {
        refused = err instanceof FileRefused ? err.reason : `open failed: ${(err as Error).message}`;
        req.abort(err instanceof FileRefused && err.reason === 'not-found' ? 'File not found' : 'Access violation');
      },
    );
  };

  const server = tftp.createServer(
    {
      host: opts.host,
      port: opts.port || 69,
      root: realRoot,
      denyPUT: true,
      blockSize,
      windowSize: opts.windowSize ?? 2,
      timeout: opts.timeoutMs ?? 1000,
      retries: opts.retries ?? 3,
    },
    onRequest,
  );
  // node-tftp turns port 0 into 69 while parsing options; the field it binds is public, so ask for 0 there.
  server.port = opts.port;
  server.on('error', (err: Error) => log.error({ err: err.message }, 'tftp server socket error'));
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
    server.listen();
  });
  // The bound port lives on node-tftp's private socket (its d.ts has no accessor).
  const port = (server as unknown as { _socket: Socket })._socket.address().port;
  log.info({ host: opts.host, port, root: realRoot, blockSize }, 'tftp server listening');
  return {
    port,
    events,
    stop: () =>
      new Promise<void>((resolve) => {
        server.once('close', () => resolve());
        server.close();
      }),
  };
}
