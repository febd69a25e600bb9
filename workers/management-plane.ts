import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import type { Client } from '@temporalio/client';
import { KubeConfig } from '@kubernetes/client-node';
import { PLANE_PROBE_WORKFLOW_PREFIX, TASK_QUEUES } from '../api/names';
import type { PlaneProbeResult } from '../api/plane-probe';
import { installCrds } from '../k8s-bridge/install-crds';
import { AesGcmPayloadCodec, loadCodecKeys } from './codec/aes-gcm-codec';
import { startCodecServer } from './codec/codec-server';
import { loadCodecToken } from './codec/codec-token';
import { connectTemporalClient, connectTemporalWorker, describeTemporalEdge, type TemporalEdge } from './temporal-connection';
import { statePaths, type PlaneConfig } from './config';
import { startKubeApiserver, type KubeApiserver } from './embedded/kube-apiserver';
import { startTemporalDevServer, type TemporalDevServer } from './embedded/temporal-dev-server';
import { loadToolPaths } from './embedded/tools';
import { bundleWorkflows } from './lifecycle-worker';
import { startHostStack } from './host-stack';
import { loadInventory } from '../lab/inventory';
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
  bridge: string;
  lab: string;
  logs: string;
  codec: string;
}

export interface ManagementPlane {
  summary: PlaneSummary;
  client: Client;
  stop(): Promise<void>;
}

/**
 * Starts the parts of the management plane in dependency order and, on stop,
 * tears them down in reverse: worker (finishing in-flight tasks) before
 * Temporal, kube-apiserver before etcd. "Ready" means a probe workflow went
 * through this plane's own worker.
 */
export async function startManagementPlane(cfg: PlaneConfig, log: Logger): Promise<ManagementPlane> {
  const paths = statePaths(cfg.stateDir);
  mkdirSync(paths.logs, { recursive: true });
  mkdirSync(paths.data, { recursive: true });
  const undo: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const f of undo.reverse()) await f().catch((err: unknown) => log.error({ err }, 'stop step failed'));
    undo.length = 0;
  };

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
      });
      undo.push(() => temporal!.stop());
    }
    const temporalAddress = cfg.temporalAddress ?? temporal!.address;

    let kube: KubeApiserver | undefined;
    if (!cfg.kubeconfig && tools) {
      log.info({ data: paths.kubeData }, 'starting embedded kube-apiserver and etcd');
      kube = await startKubeApiserver({
        kubeApiserverBinary: tools.kubeApiserver,
        etcdBinary: tools.etcd,
        dataDir: paths.kubeData,
        logDir: paths.logs,
        kubeconfigPath: paths.kubeconfig,
        apiPort: cfg.kubeApiPort,
        etcdPort: cfg.kubeApiPort + 10000 <= 65535 ? cfg.kubeApiPort + 10000 : undefined,
        etcdPeerPort: cfg.kubeApiPort + 10001 <= 65535 ? cfg.kubeApiPort + 10001 : undefined,
      });
      undo.push(() => kube!.stop());
    }
    const kc = new KubeConfig();
    if (kube) kc.loadFromFile(kube.kubeconfigPath);
    else if (cfg.kubeconfig) kc.loadFromFile(cfg.kubeconfig);
    const crds = await installCrds(kc);
    log.info({ crds }, 'CRDs installed');

    // TLS/mTLS/API key apply to a remote Temporal only (config.ts refuses them without --temporal-address).
    const edge: TemporalEdge = { address: temporalAddress, namespace: cfg.temporalNamespace, ...(cfg.temporalAddress ? cfg.temporalTls : {}) };
    const nativeConnection = await connectTemporalWorker(edge);
    undo.push(() => nativeConnection.close());
    const { connection, client } = await connectTemporalClient(edge, { dataConverter });
    undo.push(() => connection.close());

    const workflowBundle = await bundleWorkflows();
    const inventory = cfg.lab ? loadInventory(cfg.labInventory) : undefined;
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
      lab: inventory ? { inventory, basePort: cfg.labBasePort } : undefined,
      log,
    });
    undo.push(() => stack.stop());

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
      bridge: `watching BareMetalHosts in ${cfg.watchNamespace ? `namespace ${cfg.watchNamespace}` : 'all namespaces'} (leader election: Lease ironflow-system/ironflow-k8s-bridge)`,
      lab: stack.lab
        ? `${stack.lab.members.length} servers (${inventory!.servers.filter((x) => x.bmc.protocol === 'redfish').length} Redfish, ${inventory!.servers.filter((x) => x.bmc.protocol === 'ipmi').length} IPMI); manifests: kubectl apply -f ${stack.lab.manifestsFile}`
        : 'disabled (--no-lab)',
      logs: paths.logs,
      codec:
        `AES-256-GCM payload encryption, plaintext refused by the workers; codec server ${codecServer.url} ` +
        `(temporal CLI: --codec-endpoint ${codecServer.url} --codec-auth "Bearer $(cat ${codecToken.source === 'configured' ? '<your IRONFLOW_CODEC_TOKEN>' : paths.codecToken})"; Web UI: sign in once at ${codecServer.url}/login)`,
    };
    return { summary, client, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
