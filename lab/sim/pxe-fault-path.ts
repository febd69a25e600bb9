/**
 * A lossy network path between one simulated server and Ironflow's PXE
 * services, on loopback: real UDP and TCP relays that lose what the server's
 * faults say (api/lab.ts), so the simulated firmware's retries are tested
 * against real packets, not a flag.
 *
 *   pxe-tftp-loss  the first `count` TFTP datagrams on the path (either
 *                  direction: read requests, OACKs, data, acks) are dropped.
 *   pxe-http-loss  the first `count` HTTP connections are reset before any
 *                  byte reaches the plane (scripts, kernel, initramfs alike),
 *                  so the plane never sees the request.
 *
 * TFTP answers from a new port per transfer (its TID): the relay mirrors
 * that, with a client-facing socket per server TID.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { connect, createServer, type Server, type Socket as TcpSocket } from 'node:net';

export interface PxeFaultPathOptions {
  /** The plane's TFTP server and HTTP origin. */
  tftp: { host: string; port: number };
  httpOrigin: string;
  tftpLoss?: number;
  httpLoss?: number;
  /** Told of every datagram dropped and connection reset, e.g. "pxe-tftp-loss dropped datagram 1 of 3". */
  onLoss?: (what: string) => void;
}

export interface PxeFaultPath {
  /** What the server uses instead of the plane's addresses. */
  via: { httpOrigin: string; tftp: { host: string; port: number } };
  stats(): { tftpDropped: number; tftpForwarded: number; httpReset: number; httpForwarded: number };
  stop(): Promise<void>;
}

const bind = (s: Socket) => new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));

export async function startPxeFaultPath(o: PxeFaultPathOptions): Promise<PxeFaultPath> {
  const stats = { tftpDropped: 0, tftpForwarded: 0, httpReset: 0, httpForwarded: 0 };
  let tftpLossLeft = o.tftpLoss ?? 0;
  let httpLossLeft = o.httpLoss ?? 0;
  const lose = () => {
    if (tftpLossLeft <= 0) return false;
    tftpLossLeft -= 1;
    stats.tftpDropped += 1;
    o.onLoss?.(`pxe-tftp-loss dropped datagram ${stats.tftpDropped} of ${o.tftpLoss}`);
    return true;
  };

  // --- TFTP: the listen socket takes read requests; per client port one socket faces the server, and per
  // server transfer (its TID) one socket faces the client, so a client sees one TID per transfer, as without
  // the relay (a retransmitted read request can start a second transfer; the client refuses its packets).
  const listen = createSocket('udp4');
  await bind(listen);
  const sockets: Socket[] = [];
  const sessions = new Map<string, Promise<Socket>>();
  const session = (client: RemoteInfo) => {
    const key = `${client.address}:${client.port}`;
    let s = sessions.get(key);
    if (!s) {
      s = (async () => {
        const toServer = createSocket('udp4');
        await bind(toServer);
        sockets.push(toServer);
        const toClient = new Map<number, Promise<Socket>>();
        toServer.on('message', (msg, from) => {
          let down = toClient.get(from.port);
          if (!down) {
            down = (async () => {
              const d = createSocket('udp4');
              await bind(d);
              sockets.push(d);
              d.on('message', (m) => {
                if (lose()) return;
                stats.tftpForwarded += 1;
                toServer.send(m, from.port, o.tftp.host);
              });
              return d;
            })();
            toClient.set(from.port, down);
          }
          void down.then((d) => {
            if (lose()) return;
            stats.tftpForwarded += 1;
            d.send(msg, client.port, client.address);
          });
        });
        return toServer;
      })();
      sessions.set(key, s);
    }
    return s;
  };
  listen.on('message', (msg, client) => {
    void session(client).then((toServer) => {
      if (lose()) return;
      stats.tftpForwarded += 1;
      toServer.send(msg, o.tftp.port, o.tftp.host);
    });
  });

  // --- HTTP: a TCP relay that resets the first connections.
  const upstream = new URL(o.httpOrigin);
  const conns = new Set<TcpSocket>();
  const http: Server = createServer((down) => {
    conns.add(down);
    down.on('close', () => conns.delete(down));
    if (httpLossLeft > 0) {
      httpLossLeft -= 1;
      stats.httpReset += 1;
      o.onLoss?.(`pxe-http-loss reset connection ${stats.httpReset} of ${o.httpLoss}`);
      down.resetAndDestroy();
      return;
    }
    stats.httpForwarded += 1;
    const up = connect(Number(upstream.port), upstream.hostname);
    conns.add(up);
    up.on('close', () => conns.delete(up));
    down.pipe(up).pipe(down);
    up.on('error', () => down.destroy());
    down.on('error', () => up.destroy());
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
  const httpPort = (http.address() as { port: number }).port;

  return {
    via: { httpOrigin: `http://127.0.0.1:${httpPort}`, tftp: { host: '127.0.0.1', port: listen.address().port } },
    stats: () => ({ ...stats }),
    stop: async () => {
      for (const c of conns) c.destroy();
      await new Promise<void>((r) => http.close(() => r()));
      for (const s of sockets) s.close();
      listen.close();
    },
  };
}
