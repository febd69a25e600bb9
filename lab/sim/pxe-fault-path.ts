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
 * TFTP answers from a new port per transfer (its TID): the relay gives each
 * client port a pair of sockets, one facing the client (the TID the client
 * sees) and one facing the server, and forwards between them.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { connect, createServer, type Server, type Socket as TcpSocket } from 'node:net';

export interface PxeFaultPathOptions {
  /** The plane's TFTP server and HTTP origin. */
  tftp: { host: string; port: number };
  httpOrigin: string;
  tftpLoss?: number;
  httpLoss?: number;
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
    return true;
  };

  // --- TFTP: listen socket + a socket pair per client port.
  const listen = createSocket('udp4');
  await bind(listen);
  const sessions = new Map<string, { toClient: Socket; toServer: Socket; serverTid?: number; client: RemoteInfo }>();
  const session = async (client: RemoteInfo) => {
    const key = `${client.address}:${client.port}`;
    let s = sessions.get(key);
    if (s) return s;
    const toClient = createSocket('udp4');
    const toServer = createSocket('udp4');
    await Promise.all([bind(toClient), bind(toServer)]);
    const created = { toClient, toServer, client, serverTid: undefined as number | undefined };
    sessions.set(key, created);
    toServer.on('message', (msg, from) => {
      created.serverTid = from.port;
      if (lose()) return;
      stats.tftpForwarded += 1;
      toClient.send(msg, client.port, client.address);
    });
    toClient.on('message', (msg) => {
      if (lose()) return;
      stats.tftpForwarded += 1;
      toServer.send(msg, created.serverTid ?? o.tftp.port, o.tftp.host);
    });
    s = created;
    return s;
  };
  // Read requests arrive here; later packets of the transfer go to the session's client-facing socket.
  listen.on('message', (msg, client) => {
    void session(client).then((s) => {
      if (lose()) return;
      stats.tftpForwarded += 1;
      // A retransmitted read request starts over at the server's main port.
      s.toServer.send(msg, o.tftp.port, o.tftp.host);
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
      for (const s of sessions.values()) {
        s.toClient.close();
        s.toServer.close();
      }
      listen.close();
    },
  };
}
