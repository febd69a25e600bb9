/**
 * mTLS and API keys to a remote Temporal, through the plane's own connection
 * code (workers/temporal-connection.ts). The dev server cannot do TLS, so a
 * TLS-terminating proxy on loopback stands in front of the test Temporal: it
 * requires a client certificate signed by its CA, negotiates h2 and pipes
 * the bytes to the dev server's plaintext port. Certificates are made with
 * openssl at test time. The dev server checks no API key, so the API-key
 * test uses an HTTP/2 endpoint that records what arrives and refuses it.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createSecureServer, type Http2SecureServer, type ServerHttp2Session } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { Worker } from '@temporalio/worker';
import { createProbeActivities } from '../../activities';
import { loadToolPaths } from '../../workers/embedded/tools';
import { WORKFLOWS_PATH } from '../../workers/lifecycle-worker';
import { connectTemporalClient, connectTemporalWorker, temporalCliEnvironment, type TemporalEdge } from '../../workers/temporal-connection';
import { sharedEnv, uniqueSuffix } from '../helpers/env';
import { registerTestSecret } from '../helpers/secrets';

const SERVER_NAME = 'temporal.ironflow.test';

/** A CA, a server certificate for SERVER_NAME and 127.0.0.1, and client certificates, all made with openssl. */
function makePki(dir: string) {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ca = (name: string) => ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '1', '-subj', `/CN=${name}`);
  const leaf = (name: string, caName: string, ext: string) => {
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    writeFileSync(join(dir, `${name}.ext`), `${ext}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.crt`, '-CAkey', `${caName}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`);
  };
  ca('test-ca');
  ca('other-ca');
  leaf('server', 'test-ca', `subjectAltName=DNS:${SERVER_NAME},IP:127.0.0.1\nextendedKeyUsage=serverAuth`);
  leaf('client', 'test-ca', 'extendedKeyUsage=clientAuth');
  leaf('stranger', 'other-ca', 'extendedKeyUsage=clientAuth');
  const f = (name: string) => join(dir, name);
  return { caCert: f('test-ca.crt'), otherCaCert: f('other-ca.crt'), serverCert: f('server.crt'), serverKey: f('server.key'), clientCert: f('client.crt'), clientKey: f('client.key'), strangerCert: f('stranger.crt'), strangerKey: f('stranger.key') };
}

describe('Temporal over mutual TLS, through a TLS-terminating proxy in front of the test server', () => {
  let dir: string;
  let pki: ReturnType<typeof makePki>;
  let proxy: TlsServer;
  let address: string;
  const seen = { authorized: 0, refused: [] as string[] };
  const env = sharedEnv();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ironflow-mtls-'));
    pki = makePki(dir);
    const [upHost, upPort] = env.temporalAddress.split(':');
    proxy = createTlsServer(
      { key: readFileSync(pki.serverKey), cert: readFileSync(pki.serverCert), ca: [readFileSync(pki.caCert)], requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'] },
      (tls) => {
        seen.authorized += 1;
        const up = netConnect(Number(upPort), upHost!);
        tls.pipe(up).pipe(tls);
        const end = () => {
          tls.destroy();
          up.destroy();
        };
        tls.on('error', end).on('close', end);
        up.on('error', end).on('close', end);
      },
    );
    proxy.on('tlsClientError', (err: Error & { code?: string }) => seen.refused.push(err.code ?? err.message));
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
    address = `127.0.0.1:${(proxy.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => proxy?.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  const edge = (o: Partial<TemporalEdge> = {}): TemporalEdge => ({ address, namespace: env.temporalNamespace, tlsCaFile: pki.caCert, tlsServerName: SERVER_NAME, ...o });
  const mtls = () => edge({ tlsCertFile: pki.clientCert, tlsKeyFile: pki.clientKey });

  it('with the client certificate, the client and a worker connect through the proxy and run a workflow', async () => {
    const before = seen.authorized;
    const { connection, client } = await connectTemporalClient(mtls());
    const native = await connectTemporalWorker(mtls());
    try {
      const taskQueue = `mtls-${uniqueSuffix()}`;
      const worker = await Worker.create({ connection: native, namespace: env.temporalNamespace, taskQueue, workflowsPath: WORKFLOWS_PATH, activities: createProbeActivities() });
      const nonce = randomUUID();
      const result = await worker.runUntil(client.workflow.execute('planeProbe', { taskQueue, workflowId: `mtls-${nonce}`, args: [{ nonce }] }));
      expect(result).toMatchObject({ nonce });
    } finally {
      await native.close();
      await connection.close();
    }
    // Both the grpc-js client and the worker's Rust core came through the proxy, authenticated.
    expect(seen.authorized - before).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it('without a client certificate the proxy refuses the handshake, and the error says which options to check', async () => {
    const refusedBefore = seen.refused.length;
    const err = (await connectTemporalClient(edge(), { connectTimeoutMs: 3_000 }).then(({ connection }) => connection.close(), (e: Error) => e)) as Error;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toContain(`cannot connect to Temporal at ${address} over TLS (no client certificate, CA ${pki.caCert}, server name ${SERVER_NAME})`);
    expect(err.message).toContain('--temporal-tls-cert');
    const workerErr = (await connectTemporalWorker(edge()).then((c) => c.close(), (e: Error) => e)) as Error;
    expect(workerErr).toBeInstanceOf(Error);
    expect(workerErr.message).toContain('cannot connect to Temporal');
    expect(seen.refused.length).toBeGreaterThan(refusedBefore);
    console.log(`proxy refused handshakes without a client certificate: ${[...new Set(seen.refused.slice(refusedBefore))].join(', ')}\nclient: ${err.message}\nworker: ${workerErr.message}`);
  }, 60_000);

  it('with the wrong CA the plane refuses the server, and a client certificate from another CA is refused by the server', async () => {
    const wrongCa = (await connectTemporalClient(edge({ tlsCaFile: pki.otherCaCert, tlsCertFile: pki.clientCert, tlsKeyFile: pki.clientKey }), { connectTimeoutMs: 3_000 }).then(
      ({ connection }) => connection.close(),
      (e: Error) => e,
    )) as Error;
    expect(wrongCa).toBeInstanceOf(Error);
    expect(wrongCa.message).toContain(`CA ${pki.otherCaCert}`);
    const wrongCaWorker = (await connectTemporalWorker(edge({ tlsCaFile: pki.otherCaCert, tlsCertFile: pki.clientCert, tlsKeyFile: pki.clientKey })).then((c) => c.close(), (e: Error) => e)) as Error;
    expect(wrongCaWorker).toBeInstanceOf(Error);

    const stranger = (await connectTemporalClient(edge({ tlsCertFile: pki.strangerCert, tlsKeyFile: pki.strangerKey }), { connectTimeoutMs: 3_000 }).then(
      ({ connection }) => connection.close(),
      (e: Error) => e,
    )) as Error;
    expect(stranger).toBeInstanceOf(Error);
    expect(stranger.message).toContain(`client certificate ${pki.strangerCert}`);
  }, 60_000);

  it('explains a missing key or a file that is not PEM before dialling', async () => {
    await expect(connectTemporalClient(edge({ tlsCertFile: pki.clientCert }))).rejects.toThrow('mutual TLS to Temporal needs both --temporal-tls-cert and --temporal-tls-key');
    const notPem = join(dir, 'not.pem');
    writeFileSync(notPem, 'hello');
    await expect(connectTemporalWorker(edge({ tlsCaFile: notPem }))).rejects.toThrow(`Temporal server CA ${notPem} (--temporal-tls-ca) is not PEM`);
    await expect(connectTemporalWorker(edge({ tlsCaFile: join(dir, 'missing.crt') }))).rejects.toThrow(/cannot be read: ENOENT/);
  });

  it('points the temporal CLI at the same server with the same TLS files, and the CLI gets through the proxy with them', async () => {
    const cliEnv = temporalCliEnvironment(mtls());
    expect(cliEnv).toEqual({
      TEMPORAL_ADDRESS: address,
      TEMPORAL_NAMESPACE: env.temporalNamespace,
      TEMPORAL_TLS: 'true',
      TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientCert,
      TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientKey,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert,
      TEMPORAL_TLS_SERVER_NAME: SERVER_NAME,
    });
    const before = seen.authorized;
    // Asynchronously: the proxy lives in this process's event loop.
    const { stdout } = await promisify(execFile)(loadToolPaths().temporal, ['operator', 'namespace', 'describe', '--namespace', env.temporalNamespace], { env: { PATH: process.env.PATH, HOME: dir, ...cliEnv }, timeout: 30_000 });
    expect(stdout).toContain(env.temporalNamespace);
    expect(seen.authorized).toBeGreaterThan(before);
  });

  describe('API key', () => {
    let stub: Http2SecureServer;
    const sessions = new Set<ServerHttp2Session>();
    let stubAddress: string;
    const authorization: string[] = [];
    const API_KEY = `api-key-${uniqueSuffix()}${uniqueSuffix()}`;
    beforeAll(async () => {
      registerTestSecret(API_KEY);
      // Records the authorization header of each call and answers UNAUTHENTICATED, as a frontend with an authorizer would to an unknown key.
      stub = createSecureServer({ key: readFileSync(pki.serverKey), cert: readFileSync(pki.serverCert), ALPNProtocols: ['h2'] });
      stub.on('session', (s) => {
        sessions.add(s);
        s.on('close', () => sessions.delete(s));
      });
      stub.on('stream', (stream, headers) => {
        authorization.push(String(headers.authorization ?? ''));
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '16', 'grpc-message': 'unknown API key' }, { endStream: true });
      });
      await new Promise<void>((r) => stub.listen(0, '127.0.0.1', () => r()));
      stubAddress = `127.0.0.1:${(stub.address() as { port: number }).port}`;
    });
    afterAll(async () => {
      // The clients keep their HTTP/2 sessions open: end them, or close() waits forever.
      for (const s of sessions) s.destroy();
      await new Promise((r) => stub?.close(r));
    });

    it('is sent as "Authorization: Bearer <key>" over TLS by both the client and the worker connection, and a refusal is reported', async () => {
      const keyed = edge({ address: stubAddress, apiKey: API_KEY });
      const clientErr = (await connectTemporalClient(keyed, { connectTimeoutMs: 3_000 }).then(({ connection }) => connection.close(), (e: Error) => e)) as Error;
      const workerErr = (await connectTemporalWorker(keyed).then((c) => c.close(), (e: Error) => e)) as Error;
      expect(clientErr).toBeInstanceOf(Error);
      expect(workerErr).toBeInstanceOf(Error);
      expect(`${clientErr.message}\n${workerErr.message}`).toContain('unknown API key');
      expect(`${clientErr.message}\n${workerErr.message}`).not.toContain(API_KEY);
      expect(new Set(authorization)).toEqual(new Set([`Bearer ${API_KEY}`]));
    }, 60_000);
  });
});
