import { isIPv4 } from 'node:net';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { STATE_DIR } from './embedded/tools';
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
  pxeHost: string;
  pxeHttpPort: number;
  tftpPort: number;
  /** Where scripts/setup.sh built the agent kernel + initramfs. */
  agentBootDir: string;
  /** Refuse BMCs outside loopback; default: on when the management cluster is the embedded one. */
  bmcLoopbackOnly?: boolean;
  /** Watch BareMetalHosts of this namespace only; all when unset. */
  watchNamespace?: string;
  /** Serve DHCP (dnsmasq) on this provisioning network; none when unset. */
  dhcp?: DhcpConfig;
  /** Replace CRDs another installation owns (a real Cluster API or Metal3 install) instead of stopping. */
  overwriteForeignCrds?: boolean;
  /** Why a KUBECONFIG from the environment was not used (it named this plane's own embedded cluster). */
  kubeconfigIgnored?: string;
  logLevel: string;
  // The Temporal edge (workers/temporal-connection.ts, workers/codec/): TLS/mTLS and API key of a
  // remote Temporal (env names are the temporal CLI's), and the codec server's bearer token.
  temporalTls?: TemporalTlsOptions;
  /** Bearer token of the codec server; unset = generated once into <state-dir>/codec-token (0600). */
  codecToken?: string;
}

export interface DhcpConfig {
  interface: string;
  /** Network namespace the interface lives in (the QEMU lab's). */
  netns?: string;
  range: { start: string; end: string };
  /** Chain script iPXE clients are told to fetch. */
  bootUrl: string;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError(`"${value}" is not a TCP port (1-65535)`);
  return n;
}

function range(value: string): { start: string; end: string } {
  const [start, end, extra] = value.split(',');
  if (!start || !end || extra !== undefined || !isIPv4(start) || !isIPv4(end)) throw new InvalidArgumentError(`"${value}" is not a DHCP range: write <first IPv4>,<last IPv4>, e.g. 10.99.0.100,10.99.0.199`);
  return { start, end };
}

/** The plane's command line; `npm start`'s launcher adds the lab's options to it. */
export function planeCommand(name = 'ironflow-plane'): Command {
  const cmd = new Command(name)
    .description('Ironflow management plane: Temporal, Kubernetes API (+ controller manager), worker, PXE services and bridge')
    .addOption(new Option('--temporal-address <host:port>', 'use this Temporal frontend instead of the embedded dev server').env('TEMPORAL_ADDRESS'))
    .addOption(new Option('--temporal-namespace <ns>', 'Temporal namespace').env('TEMPORAL_NAMESPACE').default('default'))
    .addOption(new Option('--kubeconfig <file>', "use this management cluster instead of the embedded kube-apiserver (this plane's own .ironflow/kubeconfig is recognised and ignored)").env('KUBECONFIG'))
    .addOption(new Option('--state-dir <dir>', 'data, logs, pid files and the kubeconfig of the embedded parts').env('IRONFLOW_STATE_DIR').default(STATE_DIR))
    .addOption(new Option('--temporal-port <port>', 'embedded Temporal frontend port').env('IRONFLOW_TEMPORAL_PORT').default(7233).argParser(port))
    .addOption(new Option('--temporal-ui-port <port>', 'embedded Temporal Web UI port').env('IRONFLOW_TEMPORAL_UI_PORT').default(8233).argParser(port))
    .addOption(new Option('--kube-api-port <port>', 'embedded kube-apiserver port (etcd uses it + 10000 and + 10001, kube-controller-manager + 10002)').env('IRONFLOW_KUBE_API_PORT').default(6443).argParser(port))
    .addOption(new Option('--codec-port <port>', 'codec server the Temporal Web UI calls to decrypt payloads (127.0.0.1 only)').env('IRONFLOW_CODEC_PORT').default(8234).argParser(port))
    .addOption(new Option('--pxe-host <ip>', 'address of the provisioning network the PXE/agent services bind to').env('IRONFLOW_PXE_HOST').default('127.0.0.1'))
    .addOption(new Option('--pxe-http-port <port>', 'iPXE scripts, boot files and the agent API').env('IRONFLOW_PXE_HTTP_PORT').default(6180).argParser(port))
    .addOption(new Option('--agent-boot-dir <dir>', 'agent kernel + initramfs (built by npm run setup)').env('IRONFLOW_AGENT_BOOT_DIR').default(join(STATE_DIR, 'boot')))
    .addOption(new Option('--bmc-loopback-only <yes|no>', 'refuse BMC addresses outside 127.0.0.0/8 (default: yes with the embedded kube-apiserver, no with --kubeconfig)').env('IRONFLOW_BMC_LOOPBACK_ONLY').choices(['yes', 'no']))
    .addOption(new Option('--watch-namespace <ns>', 'only manage BareMetalHosts of this namespace').env('IRONFLOW_WATCH_NAMESPACE'))
    .addOption(new Option('--tftp-port <port>', 'TFTP (69 on a real provisioning network)').env('IRONFLOW_TFTP_PORT').default(6969).argParser(port))
    .addOption(new Option('--dhcp-interface <name>', 'serve DHCP (dnsmasq) for PXE on this interface of the provisioning network').env('IRONFLOW_DHCP_INTERFACE'))
    .addOption(new Option('--dhcp-netns <name>', 'the network namespace that interface lives in').env('IRONFLOW_DHCP_NETNS'))
    .addOption(new Option('--dhcp-range <first,last>', 'addresses DHCP hands out (with --dhcp-interface)').env('IRONFLOW_DHCP_RANGE').argParser(range))
    .addOption(new Option('--dhcp-boot-url <url>', 'iPXE chain script DHCP points clients at (default: the PXE HTTP service)').env('IRONFLOW_DHCP_BOOT_URL'))
    .addOption(new Option('--overwrite-foreign-crds', 'replace CRDs another installation owns (e.g. a real Cluster API or Metal3) with Ironflow\'s; without it the plane stops and says what differs (env IRONFLOW_OVERWRITE_FOREIGN_CRDS=yes|no)'))
    .addOption(new Option('--log-level <level>', 'pino log level').env('IRONFLOW_LOG_LEVEL').default('info').choices(['trace', 'debug', 'info', 'warn', 'error']));
  // The Temporal edge: TLS/mTLS/API key for --temporal-address, and the codec server's token.
  return addTemporalTlsOptions(cmd).addOption(new Option('--codec-token <token>', 'bearer token the codec server asks for (default: generated into <state-dir>/codec-token)').env('IRONFLOW_CODEC_TOKEN'));
}

const TLS_KEYS = ['temporalTls', 'temporalTlsCert', 'temporalTlsKey', 'temporalTlsCa', 'temporalTlsServerName', 'temporalApiKey'] as const;

interface PlaneOpts {
  temporalAddress?: string; temporalNamespace: string; kubeconfig?: string; stateDir: string;
  temporalPort: number; temporalUiPort: number; kubeApiPort: number; codecPort: number;
  pxeHost: string; pxeHttpPort: number; tftpPort: number; agentBootDir: string; watchNamespace?: string; logLevel: string;
  bmcLoopbackOnly?: 'yes' | 'no';
  dhcpInterface?: string; dhcpNetns?: string; dhcpRange?: { start: string; end: string }; dhcpBootUrl?: string;
  overwriteForeignCrds?: boolean;
  temporalTls?: boolean | string; temporalTlsCert?: string; temporalTlsKey?: string; temporalTlsCa?: string; temporalTlsServerName?: string; temporalApiKey?: string;
  codecToken?: string;
}

/**
 * The KUBECONFIG the README's demo exports names this plane's own embedded
 * cluster: taken as "use an external cluster" it would make the next start
 * skip the embedded kube-apiserver and talk to nothing (or to a leftover).
 */
function ownKubeconfig(kubeconfig: string | undefined, stateDir: string): { kubeconfig?: string; ignored?: string } {
  if (!kubeconfig) return {};
  const own = resolve(statePaths(stateDir).kubeconfig);
  const entries = kubeconfig.split(':').filter(Boolean);
  if (entries.length > 0 && entries.every((e) => resolve(e) === own)) {
    return { ignored: `${kubeconfig} is this plane's own embedded cluster (written by an earlier start): starting the embedded kube-apiserver` };
  }
  return { kubeconfig };
}

/** yes|no from the environment (a boolean flag's env var would be "set" even for "no"). */
function yesNo(name: string, env: NodeJS.ProcessEnv): boolean | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  if (['yes', 'true', '1'].includes(v.toLowerCase())) return true;
  if (['no', 'false', '0'].includes(v.toLowerCase())) return false;
  throw new InvalidArgumentError(`${name}="${v}" is neither yes nor no`);
}

/**
 * Resolves parsed options (flags + environment) into the plane's
 * configuration. `source` tells where an option's value came from
 * (commander's getOptionValueSource): TLS settings from flags without a
 * remote Temporal are a mistake; from the environment they are the
 * temporal CLI's, left in the shell, and are ignored.
 */
export function planeConfigFrom(o: PlaneOpts, env: NodeJS.ProcessEnv = process.env, source: (key: string) => string | undefined = () => undefined): PlaneConfig {
  let temporalTls = temporalTlsFromOptions(o);
  if (usesTls(temporalTls) && !o.temporalAddress) {
    // TEMPORAL_TLS_* left in the shell for the temporal CLI must not break the embedded plane; flags are a mistake to report.
    if (TLS_KEYS.some((k) => source(k) === 'cli')) throw new InvalidArgumentError('the Temporal TLS and API-key options are for a remote Temporal: give --temporal-address (TEMPORAL_ADDRESS) too; the embedded dev server speaks plaintext on loopback');
    temporalTls = {};
  }
  const own = ownKubeconfig(o.kubeconfig || undefined, o.stateDir);
  const kubeconfig = own.kubeconfig;
  if ((o.dhcpRange || o.dhcpNetns || o.dhcpBootUrl) && !o.dhcpInterface) throw new InvalidArgumentError('--dhcp-range, --dhcp-netns and --dhcp-boot-url need --dhcp-interface (the provisioning network to serve)');
  if (o.dhcpInterface && !o.dhcpRange) throw new InvalidArgumentError('--dhcp-interface needs --dhcp-range <first,last> (the addresses to hand out)');
  const overwrite = o.overwriteForeignCrds || yesNo('IRONFLOW_OVERWRITE_FOREIGN_CRDS', env) || false;
  return {
    temporalTls,
    codecToken: o.codecToken || undefined,
    temporalAddress: o.temporalAddress || undefined,
    temporalNamespace: o.temporalNamespace,
    kubeconfig,
    kubeconfigIgnored: own.ignored,
    stateDir: o.stateDir,
    temporalPort: o.temporalPort,
    temporalUiPort: o.temporalUiPort,
    kubeApiPort: o.kubeApiPort,
    codecPort: o.codecPort,
    pxeHost: o.pxeHost,
    pxeHttpPort: o.pxeHttpPort,
    tftpPort: o.tftpPort,
    agentBootDir: o.agentBootDir,
    watchNamespace: o.watchNamespace,
    logLevel: o.logLevel,
    bmcLoopbackOnly: o.bmcLoopbackOnly ? o.bmcLoopbackOnly === 'yes' : !kubeconfig,
    overwriteForeignCrds: overwrite,
    dhcp: o.dhcpInterface
      ? { interface: o.dhcpInterface, netns: o.dhcpNetns, range: o.dhcpRange!, bootUrl: o.dhcpBootUrl ?? `http://${o.pxeHost}:${o.pxeHttpPort}/boot.ipxe` }
      : undefined,
  };
}

/** Parses argv + environment; commander prints a clear message and exits on bad input. */
export function parsePlaneConfig(argv: string[]): PlaneConfig {
  const cmd = planeCommand();
  cmd.parse(argv, { from: 'node' });
  try {
    return planeConfigFrom(cmd.opts<PlaneOpts>(), process.env, (k) => cmd.getOptionValueSource(k));
  } catch (err) {
    if (err instanceof InvalidArgumentError) cmd.error(`error: ${err.message}`);
    throw err;
  }
}

export const statePaths = (stateDir: string) => ({
  data: join(stateDir, 'data'),
  logs: join(stateDir, 'logs'),
  temporalDb: join(stateDir, 'data', 'temporal.db'),
  kubeData: join(stateDir, 'data', 'kube'),
  kubeconfig: join(stateDir, 'kubeconfig'),
  codecKey: join(stateDir, 'codec-key.json'),
  codecToken: join(stateDir, 'codec-token'),
  /** Pid files and the health table of the running plane. */
  run: join(stateDir, 'run'),
  planeRunFile: join(stateDir, 'run', 'plane.json'),
  health: join(stateDir, 'run', 'health.json'),
});
