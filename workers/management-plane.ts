import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { KubeConfig, VersionApi } from '@kubernetes/client-node';
import { PLANE_PROBE_WORKFLOW_PREFIX, TASK_QUEUES } from '../api/names';
import type { PlaneProbeResult } from '../api/plane-probe';
import { installCrds } from '../k8s-bridge/install-crds';
import { AesGcmPayloadCodec, loadCodecKeys } from './codec/aes-gcm-codec';
import { startCodecServer } from './codec/codec-server';
import { loadCodecToken } from './codec/codec-token';
import { connectTemporalClient, connectTemporalWorker, describeTemporalEdge, type TemporalEdge } from './temporal-connection';
import { statePaths, type PlaneConfig } from './config';
import { PlaneHealth } from './embedded/health';
import { startKubeApiserver, type KubeApiserver } from './embedded/kube-apiserver';
import { assertPortsFree, type ManagedProcess, type SuperviseOptions } from './embedded/process';
import { claimRunFile } from './embedded/run-file';
import { startTemporalDevServer, type TemporalDevServer } from './embedded/temporal-dev-server';
import { loadToolPaths } from './embedded/tools';
import { bundleWorkflows } from './lifecycle-worker';
import { startHostStack } from './host-stack';
import type { Logger } from './log';

/** What a running plane tells its operator. */
export interface PlaneSummary {
  temporalAddress: string;
  /** The address and how the connection is secured (TLS, client certificate, CA, API key: names only). */
  temporalConnection: string;
  temporalNamespace: string;
  temporalUi?: string;
  temporalEmbedded: boolean;
  kubeServer: string;
  kubeconfig?: string;
  kubeEmbedded: boolean;
  crds: string[];
  taskQueue: string;
  pxe: string;
  dhcp?: string;
  bridge: string;
  logs: string;
  codec: string;
  /** Pid of the plane process and its pid file. */
  pid: number;
  runFile: string;
  /** "temporal dev server ok, etcd ok, ..." at the time of the banner; live in `<state>/run/health.json`. */
  health: string;
}

export interface ManagementPlane {
  summary: PlaneSummary;
  client: Client;
  health: PlaneHealth;
  /** The embedded children (Temporal, etcd, kube-apiserver, kube-controller-manager) under supervision. */
  processes: ManagedProcess[];
  stop(): Promise<void>;
}

export interface PlaneOptions {
  /** Supervision timing of the embedded children (tests shorten it). */
  supervision?: Pick<SuperviseOptions, 'probeEveryMs' | 'failuresBeforeRestart' | 'maxBackoffMs'>;
}

/**
 * Local data is the operator's alone: the Temporal database holds every
 * workflow, etcd every object, the codec key decrypts payloads. New files
 * are created private (the children run with umask 077); this also fixes
 * the modes a state dir from an earlier version may have.
 */
function makePrivate(stateDir: string, paths: ReturnType<typeof statePaths>): void {
  for (const d of [stateDir, paths.data, paths.logs, paths.run]) mkdirSync(d, { recursive: true, mode: 0o700 });
  const walk = (path: string) => {
    const st = statSync(path, { throwIfNoEntry: false });
    if (!st) return;
    if (st.isDirectory()) {
      if ((st.mode & 0o077) !== 0) chmodSync(path, 0o700);
      for (const e of readdirSync(path)) walk(join(path, e));
    } else if (st.isFile() && (st.mode & 0o077) !== 0) chmodSync(path, st.mode & 0o700);
  };
  chmodSync(stateDir, 0o700);
  for (const p of [paths.data, paths.logs, paths.run, paths.kubeconfig, paths.codecKey, paths.codecToken]) if (existsSync(p)) walk(p);
}

/**
 * Starts the parts of the management plane in dependency order and, on stop,
 * tears them down in reverse: worker (finishing in-flight tasks) before
 * Temporal, kube-apiserver before etcd. "Ready" means a probe workflow went
 * through this plane's own worker.
 */
export async function startManagementPlane(cfg: PlaneConfig, log: Logger, opts: PlaneOptions = {}): Promise<ManagementPlane> {
  const paths = statePaths(cfg.stateDir);
  makePrivate(cfg.stateDir, paths);
  // Refuses while another plane runs on this state dir; ends a dead one's leftovers by pid.
  const runFile = await claimRunFile(paths.planeRunFile, { role: 'management plane', stateDir: cfg.stateDir, log: (m) => log.warn(m) });
  const health = new PlaneHealth(log, paths.health);
  const undo: Array<() => Promise<void>> = [async () => runFile.release()];
  const stop = async () => {
    for (const f of undo.reverse()) await f().catch((err: unknown) => log.error({ err }, 'stop step failed'));
    undo.length = 0;
  };
  const supervise: SuperviseOptions = { health, log, ...opts.supervision };
  if (cfg.kubeconfigIgnored) log.info({ kubeconfig: process.env.KUBECONFIG }, cfg.kubeconfigIgnored);

  try {
    const needsTools = !cfg.temporalAddress || !cfg.kubeconfig;
    const tools = needsTools ? loadToolPaths() : undefined;

    // Payloads are encrypted before they reach Temporal, and the workers refuse
    // any that are not (a plaintext signal cannot steer a host); the codec
    // server lets the Web UI and `temporal --codec-endpoint` show them to
    // operators who hold its token.
    const codec = new AesGcmPayloadCodec(loadCodecKeys(process.env, paths.codecKey));
    const dataConverter = { payloadCodecs: [codec] };
    const uiOrigin = `http://127.0.0.1:${cfg.temporalUiPort}`;
    assertPortsFree([
      { port: cfg.codecPort, what: 'payload codec server', flag: '--codec-port' },
      { port: cfg.pxeHttpPort, host: cfg.pxeHost, what: 'PXE HTTP service', flag: '--pxe-http-port' },
      { port: cfg.tftpPort, host: cfg.pxeHost, protocol: 'udp', what: 'TFTP', flag: '--tftp-port' },
    ]);
    const codecToken = loadCodecToken(cfg.codecToken, paths.codecToken);
    const codecServer = await startCodecServer({
      codec: codec.showingPlaintext(),
      token: codecToken.token,
      tokenHint: codecToken.source === 'configured' ? 'IRONFLOW_CODEC_TOKEN' : paths.codecToken,
      port: cfg.codecPort,
      allowOrigins: [uiOrigin, 'http://localhost:' + cfg.temporalUiPort],
    });
    undo.push(() => codecServer.stop());

    let temporal: TemporalDevServer | undefined;
    if (!cfg.temporalAddress && tools) {
      log.info({ db: paths.temporalDb }, 'starting embedded Temporal dev server');
      temporal = await startTemporalDevServer({
        binary: tools.temporal,
        dbFile: paths.temporalDb,
        port: cfg.temporalPort,
        uiPort: cfg.temporalUiPort,
        namespace: cfg.temporalNamespace,
        logDir: paths.logs,
        uiCodecEndpoint: codecServer.url,
        supervise,
      });
      undo.push(() => temporal!.stop());
      runFile.refresh();
    }
    const temporalAddress = cfg.temporalAddress ?? temporal!.address;

    let kube: KubeApiserver | undefined;
    if (!cfg.kubeconfig && tools) {
      log.info({ data: paths.kubeData }, 'starting embedded kube-apiserver, etcd and kube-controller-manager');
      kube = await startKubeApiserver({
        kubeApiserverBinary: tools.kubeApiserver,
        kubeControllerManagerBinary: tools.kubeControllerManager,
        etcdBinary: tools.etcd,
        dataDir: paths.kubeData,
        logDir: paths.logs,
        kubeconfigPath: paths.kubeconfig,
        apiPort: cfg.kubeApiPort,
        apiPortFlag: '--kube-api-port',
        etcdPort: cfg.kubeApiPort + 10000 <= 65535 ? cfg.kubeApiPort + 10000 : undefined,
        etcdPeerPort: cfg.kubeApiPort + 10001 <= 65535 ? cfg.kubeApiPort + 10001 : undefined,
        controllerManagerPort: cfg.kubeApiPort + 10002 <= 65535 ? cfg.kubeApiPort + 10002 : undefined,
        supervise,
      });
      undo.push(() => kube!.stop());
      runFile.refresh();
    }
    const kc = new KubeConfig();
    if (kube) kc.loadFromFile(kube.kubeconfigPath);
    else if (cfg.kubeconfig) kc.loadFromFile(cfg.kubeconfig);
    const crds = await installCrds(kc, { overwriteForeign: cfg.overwriteForeignCrds, log: (m) => log.warn(m) });
    log.info({ crds }, 'CRDs installed');

    // TLS/mTLS/API key apply to a remote Temporal only (config.ts refuses them without --temporal-address).
    const edge: TemporalEdge = { address: temporalAddress, namespace: cfg.temporalNamespace, ...(cfg.temporalAddress ? cfg.temporalTls : {}) };
    const nativeConnection = await connectTemporalWorker(edge);
    undo.push(() => nativeConnection.close());
    const { connection, client } = await connectTemporalClient(edge, { dataConverter });
    undo.push(() => connection.close());

    // Parts the plane does not run itself are watched, not restarted: it says when they are gone.
    if (!temporal) {
      const stopTemporalWatch = health.watch('Temporal (external)', async () => {
        await connection.workflowService.describeNamespace({ namespace: cfg.temporalNamespace });
        return temporalAddress;
      });
      undo.push(async () => stopTemporalWatch());
    }
    if (!kube) {
      const version = kc.makeApiClient(VersionApi);
      const stopKubeWatch = health.watch('Kubernetes API (external)', async () => `${kc.getCurrentCluster()?.server} ${(await version.getCode()).gitVersion}`);
      undo.push(async () => stopKubeWatch());
    }

    const workflowBundle = await bundleWorkflows();
    const stack = await startHostStack({
      kc,
      client,
      connection: nativeConnection,
      namespace: cfg.temporalNamespace,
      workflowBundle,
      dataConverter,
      stateDir: cfg.stateDir,
      agentBootDir: cfg.agentBootDir,
      watchNamespace: cfg.watchNamespace,
      bmcLoopbackOnly: cfg.bmcLoopbackOnly,
      provisioning: { bindHost: cfg.pxeHost, httpPort: cfg.pxeHttpPort, tftpPort: cfg.tftpPort },
      leaseNamespace: 'ironflow-system',
      dhcp: cfg.dhcp,
      log,
    });
    undo.push(() => stack.stop());
    runFile.refresh();
    const stopWorkerWatch = health.watch('lifecycle worker', async () => {
      const state = stack.worker.getState();
      if (state !== 'RUNNING') throw new Error(`worker is ${state}: no workflow or activity runs until the plane is restarted`);
      return `task queue ${TASK_QUEUES.lifecycle}`;
    });
    undo.push(async () => stopWorkerWatch());

    const nonce = randomUUID();
    const probe: PlaneProbeResult = await client.workflow.execute('planeProbe', {
      taskQueue: TASK_QUEUES.lifecycle,
      workflowId: `${PLANE_PROBE_WORKFLOW_PREFIX}-${nonce}`,
      args: [{ nonce }],
      workflowExecutionTimeout: '1 minute',
    });
    if (probe.nonce !== nonce) throw new Error(`plane probe answered nonce ${probe.nonce}, expected ${nonce}`);

    const summary: PlaneSummary = {
      temporalAddress,
      temporalConnection: describeTemporalEdge(edge),
      temporalNamespace: cfg.temporalNamespace,
      temporalUi: temporal?.uiUrl,
      temporalEmbedded: !!temporal,
      kubeServer: kc.getCurrentCluster()?.server ?? '?',
      kubeconfig: kube?.kubeconfigPath ?? cfg.kubeconfig,
      kubeEmbedded: !!kube,
      crds,
      taskQueue: TASK_QUEUES.lifecycle,
      pxe: `${stack.provisioning.httpUrl} (iPXE, files, agent API), TFTP ${stack.provisioning.tftp.host}:${stack.provisioning.tftp.port}`,
      dhcp: cfg.dhcp ? `dnsmasq on ${cfg.dhcp.interface}${cfg.dhcp.netns ? ` (netns ${cfg.dhcp.netns})` : ''}, ${cfg.dhcp.range.start}-${cfg.dhcp.range.end}, boot ${cfg.dhcp.bootUrl}` : undefined,
      bridge: `watching BareMetalHosts in ${cfg.watchNamespace ? `namespace ${cfg.watchNamespace}` : 'all namespaces'} (leader election: Lease ironflow-system/ironflow-k8s-bridge)`,
      logs: paths.logs,
      pid: process.pid,
      runFile: runFile.path,
      health: health.line(),
      codec:
        `AES-256-GCM payload encryption, plaintext refused by the workers; codec server ${codecServer.url} ` +
        `(temporal CLI: --codec-endpoint ${codecServer.url} --codec-auth "Bearer $(cat ${codecToken.source === 'configured' ? '<your IRONFLOW_CODEC_TOKEN>' : paths.codecToken})"; Web UI: sign in once at ${codecServer.url}/login)`,
    };
    return { summary, client, health, processes: [...(temporal ? [temporal.process] : []), ...(kube?.processes ?? [])], stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
