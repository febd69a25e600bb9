import { createServer } from 'node:net';

async function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * A port for an embedded kube-apiserver whose etcd (+10000, +10001) and
 * controller manager (+10002) ports are free too, all below 32768: ports in
 * the ephemeral range can be taken any moment by an outgoing connection.
 */
export async function kubeApiTestPort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const p = 20_000 + Math.floor(Math.random() * 2_700);
    const all = await Promise.all([p, p + 10_000, p + 10_001, p + 10_002].map(canBind));
    if (all.every(Boolean)) return p;
  }
  throw new Error('no free port set for kube-apiserver, etcd and kube-controller-manager in 20000-32767');
}
