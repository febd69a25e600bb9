import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { STATE_DIR } from './embedded/tools';

/** Everything `npm start` can be told; each key has a flag, an env var and a default. */
export interface PlaneConfig {
  /** host:port of an existing Temporal frontend; unset = start the embedded dev server. */
  temporalAddress?: string;
  temporalNamespace: string;
  /** Kubeconfig of an existing management cluster; unset = start the embedded kube-apiserver. */
  kubeconfig?: string;
  stateDir: string;
  temporalPort: number;
  temporalUiPort: number;
  kubeApiPort: number;
  lab: boolean;
  logLevel: string;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError(`"${value}" is not a TCP port (1-65535)`);
  return n;
}

/** Parses argv + environment; commander prints a clear message and exits on bad input. */
export function parsePlaneConfig(argv: string[]): PlaneConfig {
  const cmd = new Command('ironflow-plane')
    .description('Ironflow management plane: Temporal, Kubernetes API, worker, bridge and virtual lab')
    .addOption(new Option('--temporal-address <host:port>', 'use this Temporal frontend instead of the embedded dev server').env('TEMPORAL_ADDRESS'))
    .addOption(new Option('--temporal-namespace <ns>', 'Temporal namespace').env('TEMPORAL_NAMESPACE').default('default'))
    .addOption(new Option('--kubeconfig <file>', 'use this management cluster instead of the embedded kube-apiserver').env('KUBECONFIG'))
    .addOption(new Option('--state-dir <dir>', 'data, logs and the kubeconfig of the embedded parts').env('IRONFLOW_STATE_DIR').default(STATE_DIR))
    .addOption(new Option('--temporal-port <port>', 'embedded Temporal frontend port').env('IRONFLOW_TEMPORAL_PORT').default(7233).argParser(port))
    .addOption(new Option('--temporal-ui-port <port>', 'embedded Temporal Web UI port').env('IRONFLOW_TEMPORAL_UI_PORT').default(8233).argParser(port))
    .addOption(new Option('--kube-api-port <port>', 'embedded kube-apiserver port').env('IRONFLOW_KUBE_API_PORT').default(6443).argParser(port))
    .addOption(new Option('--no-lab', 'do not start the virtual hardware lab'))
    .addOption(new Option('--log-level <level>', 'pino log level').env('IRONFLOW_LOG_LEVEL').default('info').choices(['trace', 'debug', 'info', 'warn', 'error']));
  cmd.parse(argv, { from: 'node' });
  const o = cmd.opts<{
    temporalAddress?: string; temporalNamespace: string; kubeconfig?: string; stateDir: string;
    temporalPort: number; temporalUiPort: number; kubeApiPort: number; lab: boolean; logLevel: string;
  }>();
  return { ...o, temporalAddress: o.temporalAddress || undefined, kubeconfig: o.kubeconfig || undefined };
}

export const statePaths = (stateDir: string) => ({
  data: join(stateDir, 'data'),
  logs: join(stateDir, 'logs'),
  temporalDb: join(stateDir, 'data', 'temporal.db'),
  kubeData: join(stateDir, 'data', 'kube'),
  kubeconfig: join(stateDir, 'kubeconfig'),
});
