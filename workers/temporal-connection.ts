/**
 * How Ironflow reaches a remote Temporal: TLS (server CA, server name),
 * mutual TLS (client certificate and key) and API keys, for the plane's
 * Client, its workers' NativeConnection and the official `temporal` CLI
 * alike. The option names follow the `temporal` CLI's own environment
 * variables (TEMPORAL_TLS_CLIENT_CERT_PATH, ...), so one shell environment
 * configures both.
 */
import { readFileSync } from 'node:fs';
import { Client, Connection, type TLSConfig } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import { NativeConnection } from '@temporalio/worker';
import { Option, type Command } from 'commander';

/** TLS and API-key settings of a remote Temporal frontend. */
export interface TemporalTlsOptions {
  /** TLS on without further settings (system CAs, the address's host name). Implied by every other option here. */
  tls?: boolean;
  /** PEM client certificate for mutual TLS (with `tlsKeyFile`). */
  tlsCertFile?: string;
  /** PEM private key of the client certificate. */
  tlsKeyFile?: string;
  /** PEM CA bundle that signed the server's certificate; the system CAs when unset. */
  tlsCaFile?: string;
  /** Name to check the server's certificate against (and to send as SNI), when it differs from the address's host. */
  tlsServerName?: string;
  /** Sent as `Authorization: Bearer <key>` on every call (Temporal Cloud API keys, or a frontend's authorizer). */
  apiKey?: string;
}

export interface TemporalEdge extends TemporalTlsOptions {
  /** host:port of the frontend. */
  address: string;
  namespace: string;
}

/** True when any TLS or API-key option is set (then the connection uses TLS). */
export function usesTls(o: TemporalTlsOptions): boolean {
  return Boolean(o.tls || o.tlsCertFile || o.tlsKeyFile || o.tlsCaFile || o.tlsServerName || o.apiKey);
}

/**
 * The command-line options and environment variables, in one place so the
 * plane's config adds them with one call. The environment variables are the
 * `temporal` CLI's (prefer them for the API key: a flag shows in `ps`).
 */
export function addTemporalTlsOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--temporal-tls [true|false]', 'connect to --temporal-address over TLS (implied by the options below)').env('TEMPORAL_TLS'))
    .addOption(new Option('--temporal-tls-cert <file>', 'PEM client certificate for mutual TLS to Temporal').env('TEMPORAL_TLS_CLIENT_CERT_PATH'))
    .addOption(new Option('--temporal-tls-key <file>', 'PEM private key of that client certificate').env('TEMPORAL_TLS_CLIENT_KEY_PATH'))
    .addOption(new Option('--temporal-tls-ca <file>', "PEM CA bundle that signed the Temporal frontend's certificate (default: system CAs)").env('TEMPORAL_TLS_SERVER_CA_CERT_PATH'))
    .addOption(new Option('--temporal-tls-server-name <name>', "name the frontend's certificate is checked against, when not the address's host").env('TEMPORAL_TLS_SERVER_NAME'))
    .addOption(new Option('--temporal-api-key <key>', 'API key sent as "Authorization: Bearer <key>" (prefer the environment variable)').env('TEMPORAL_API_KEY'));
}

/** Picks the options added by {@link addTemporalTlsOptions} out of commander's parsed values. */
export function temporalTlsFromOptions(o: { temporalTls?: boolean | string; temporalTlsCert?: string; temporalTlsKey?: string; temporalTlsCa?: string; temporalTlsServerName?: string; temporalApiKey?: string }): TemporalTlsOptions {
  const out: TemporalTlsOptions = {};
  // From the environment commander hands the string ("true", "1", "false").
  if (o.temporalTls !== undefined && !/^(false|0|no|)$/i.test(String(o.temporalTls))) out.tls = true;
  if (o.temporalTlsCert) out.tlsCertFile = o.temporalTlsCert;
  if (o.temporalTlsKey) out.tlsKeyFile = o.temporalTlsKey;
  if (o.temporalTlsCa) out.tlsCaFile = o.temporalTlsCa;
  if (o.temporalTlsServerName) out.tlsServerName = o.temporalTlsServerName;
  if (o.temporalApiKey) out.apiKey = o.temporalApiKey;
  return out;
}

function readPem(file: string, what: string, flag: string): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    throw new Error(`${what} ${file} (${flag}) cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!pem.includes('-----BEGIN ')) throw new Error(`${what} ${file} (${flag}) is not PEM (no "-----BEGIN" line)`);
  return pem;
}

/**
 * The SDK's TLS settings for these options, or undefined for plaintext.
 * Errors say which option to fix: a client certificate without its key,
 * a file that cannot be read or is not PEM.
 */
export function temporalTlsConfig(o: TemporalTlsOptions): TLSConfig | undefined {
  if (!usesTls(o)) return undefined;
  if (Boolean(o.tlsCertFile) !== Boolean(o.tlsKeyFile)) {
    throw new Error('mutual TLS to Temporal needs both --temporal-tls-cert and --temporal-tls-key (TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH)');
  }
  return {
    ...(o.tlsServerName ? { serverNameOverride: o.tlsServerName } : {}),
    ...(o.tlsCaFile ? { serverRootCACertificate: readPem(o.tlsCaFile, 'Temporal server CA', '--temporal-tls-ca') } : {}),
    ...(o.tlsCertFile && o.tlsKeyFile
      ? { clientCertPair: { crt: readPem(o.tlsCertFile, 'Temporal client certificate', '--temporal-tls-cert'), key: readPem(o.tlsKeyFile, 'Temporal client key', '--temporal-tls-key') } }
      : {}),
  };
}

/** One line on how this edge is secured, for the banner and errors (file names only, never the key). */
export function describeTemporalEdge(e: TemporalEdge): string {
  if (!usesTls(e)) return `${e.address} (plaintext)`;
  const parts = [
    e.tlsCertFile ? `client certificate ${e.tlsCertFile}` : 'no client certificate',
    e.tlsCaFile ? `CA ${e.tlsCaFile}` : 'system CAs',
    ...(e.tlsServerName ? [`server name ${e.tlsServerName}`] : []),
    ...(e.apiKey ? ['API key'] : []),
  ];
  return `${e.address} over TLS (${parts.join(', ')})`;
}

function unreachable(e: TemporalEdge, err: unknown): Error {
  const why = (err as Error)?.message ?? String(err);
  const hint = usesTls(e)
    ? 'check the TLS options: the CA that signed the server certificate (--temporal-tls-ca), the name in it (--temporal-tls-server-name), and whether the server requires a client certificate (--temporal-tls-cert/--temporal-tls-key) or an API key'
    : 'is it running, and does it expect TLS (--temporal-tls and friends)?';
  return new Error(`cannot connect to Temporal at ${describeTemporalEdge(e)}: ${why}; ${hint}`);
}

/** The plane's client connection (grpc-js), checked at once. */
export async function connectTemporalClient(e: TemporalEdge, o: { dataConverter?: DataConverter; connectTimeoutMs?: number } = {}): Promise<{ connection: Connection; client: Client }> {
  const tls = temporalTlsConfig(e);
  let connection: Connection;
  try {
    connection = await Connection.connect({ address: e.address, tls, ...(e.apiKey ? { apiKey: e.apiKey } : {}), connectTimeout: o.connectTimeoutMs ?? 10_000 });
  } catch (err) {
    throw unreachable(e, err);
  }
  return { connection, client: new Client({ connection, namespace: e.namespace, ...(o.dataConverter ? { dataConverter: o.dataConverter } : {}) }) };
}

/** The workers' connection (the SDK's Rust core), checked at once. */
export async function connectTemporalWorker(e: TemporalEdge): Promise<NativeConnection> {
  const tls = temporalTlsConfig(e);
  try {
    return await NativeConnection.connect({ address: e.address, tls, ...(e.apiKey ? { apiKey: e.apiKey } : {}) });
  } catch (err) {
    throw unreachable(e, err);
  }
}

/**
 * The environment that points the official `temporal` CLI at the same
 * Temporal, with the same TLS settings, and at the plane's codec server.
 * The API key and the codec token are referred to, never copied: pass
 * `apiKeyEnv`/`codecAuth` as shell text, e.g. `Bearer $(cat <token file>)`.
 */
export function temporalCliEnvironment(e: TemporalEdge, codec?: { endpoint: string; auth?: string }): Record<string, string> {
  const env: Record<string, string> = { TEMPORAL_ADDRESS: e.address, TEMPORAL_NAMESPACE: e.namespace };
  if (usesTls(e)) env.TEMPORAL_TLS = 'true';
  if (e.tlsCertFile) env.TEMPORAL_TLS_CLIENT_CERT_PATH = e.tlsCertFile;
  if (e.tlsKeyFile) env.TEMPORAL_TLS_CLIENT_KEY_PATH = e.tlsKeyFile;
  if (e.tlsCaFile) env.TEMPORAL_TLS_SERVER_CA_CERT_PATH = e.tlsCaFile;
  if (e.tlsServerName) env.TEMPORAL_TLS_SERVER_NAME = e.tlsServerName;
  if (codec) {
    env.TEMPORAL_CODEC_ENDPOINT = codec.endpoint;
    if (codec.auth) env.TEMPORAL_CODEC_AUTH = codec.auth;
  }
  return env;
}
