import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { PROJECT_ROOT, STATE_DIR } from './embedded/tools';
import { addTemporalTlsOptions, temporalTlsFromOptions, usesTls, type TemporalTlsOptions } from './temporal-connection';

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
  /** Codec server for the Temporal Web UI (decrypts payloads for operators). */
  codecPort: number;
  lab: boolean;
  labInventory: string;
  /** Lab BMC ports start here (Redfish 6200+, IPMI 6300+), fixed so BareMetalHosts survive a restart. */
  labBasePort?: number;
  pxeHost: string;
  pxeHttpPort: number;
  tftpPort: number;
  /** Where scripts/setup.sh built the agent kernel + initramfs. */
  agentBootDir: string;
  /** Refuse BMCs outside loopback; default: on when the management cluster is the embedded one. */
  bmcLoopbackOnly?: boolean;
  /** Watch BareMetalHosts of this namespace only; all when unset. */
  watchNamespace?: string;
  logLevel: string;
  // The Temporal edge (workers/temporal-connection.ts, workers/codec/): TLS/mTLS and API key of a
  // remote Temporal (env names are the temporal CLI's), and the codec server's bearer token.
  temporalTls?: TemporalTlsOptions;
  /** Bearer token of the codec server; unset = generated once into <state-dir>/codec-token (0600). */
  codecToken?: string;
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
    .addOption(new Option('--codec-port <port>', 'codec server the Temporal Web UI calls to decrypt payloads (127.0.0.1 only)').env('IRONFLOW_CODEC_PORT').default(8234).argParser(port))
    .addOption(new Option('--no-lab', 'do not start the virtual hardware lab'))
    .addOption(new Option('--lab-inventory <file>', 'servers of the virtual lab').env('IRONFLOW_LAB_INVENTORY').default(join(PROJECT_ROOT, 'lab', 'inventory.yaml')))
    .addOption(new Option('--lab-base-port <port>', 'first port of the lab BMCs (Redfish shards, then IPMI at +100)').env('IRONFLOW_LAB_BASE_PORT').default(6200).argParser(port))
    .addOption(new Option('--pxe-host <ip>', 'address of the provisioning network the PXE/agent services bind to').env('IRONFLOW_PXE_HOST').default('127.0.0.1'))
    .addOption(new Option('--pxe-http-port <port>', 'iPXE scripts, boot files and the agent API').env('IRONFLOW_PXE_HTTP_PORT').default(6180).argParser(port))
    .addOption(new Option('--agent-boot-dir <dir>', 'agent kernel + initramfs (built by npm run setup)').env('IRONFLOW_AGENT_BOOT_DIR').default(join(STATE_DIR, 'boot')))
    .addOption(new Option('--bmc-loopback-only <yes|no>', 'refuse BMC addresses outside 127.0.0.0/8 (default: yes with the embedded kube-apiserver, no with --kubeconfig)').env('IRONFLOW_BMC_LOOPBACK_ONLY').choices(['yes', 'no']))
    .addOption(new Option('--watch-namespace <ns>', 'only manage BareMetalHosts of this namespace').env('IRONFLOW_WATCH_NAMESPACE'))
    .addOption(new Option('--tftp-port <port>', 'TFTP (69 on a real provisioning network)').env('IRONFLOW_TFTP_PORT').default(6969).argParser(port))
    .addOption(new Option('--log-level <level>', 'pino log level').env('IRONFLOW_LOG_LEVEL').default('info').choices(['trace', 'debug', 'info', 'warn', 'error']));
  // The Temporal edge: TLS/mTLS/API key for --temporal-address, and the codec server's token.
  addTemporalTlsOptions(cmd).addOption(new Option('--codec-token <token>', 'bearer token the codec server asks for (default: generated into <state-dir>/codec-token)').env('IRONFLOW_CODEC_TOKEN'));
  cmd.parse(argv, { from: 'node' });
  let temporalTls = temporalTlsFromOptions(cmd.opts());
  if (usesTls(temporalTls) && !cmd.opts<{ temporalAddress?: string }>().temporalAddress) {
    // TEMPORAL_TLS_* left in the shell for the temporal CLI must not break the embedded plane; flags are a mistake to report.
    const fromFlags = ['temporalTls', 'temporalTlsCert', 'temporalTlsKey', 'temporalTlsCa', 'temporalTlsServerName', 'temporalApiKey'].some((k) => cmd.getOptionValueSource(k) === 'cli');
    if (fromFlags) cmd.error('error: the Temporal TLS and API-key options are for a remote Temporal: give --temporal-address (TEMPORAL_ADDRESS) too; the embedded dev server speaks plaintext on loopback');
    temporalTls = {};
  }
  const o = cmd.opts<{
    temporalAddress?: string; temporalNamespace: string; kubeconfig?: string; stateDir: string;
    temporalPort: number; temporalUiPort: number; kubeApiPort: number; codecPort: number; lab: boolean; labInventory: string; labBasePort: number;
    pxeHost: string; pxeHttpPort: number; tftpPort: number; agentBootDir: string; watchNamespace?: string; logLevel: string;
    bmcLoopbackOnly?: 'yes' | 'no';
  }>();
  const kubeconfig = o.kubeconfig || undefined;
  return {
    ...o,
    temporalTls,
    codecToken: cmd.opts<{ codecToken?: string }>().codecToken || undefined,
    temporalAddress: o.temporalAddress || undefined,
    kubeconfig,
    bmcLoopbackOnly: o.bmcLoopbackOnly ? o.bmcLoopbackOnly === 'yes' : !kubeconfig,
  };
}

export const statePaths = (stateDir: string) => ({
  data: join(stateDir, 'data'),
  logs: join(stateDir, 'logs'),
  temporalDb: join(stateDir, 'data', 'temporal.db'),
  kubeData: join(stateDir, 'data', 'kube'),
  kubeconfig: join(stateDir, 'kubeconfig'),
  codecKey: join(stateDir, 'codec-key.json'),
  codecToken: join(stateDir, 'codec-token'),
});
