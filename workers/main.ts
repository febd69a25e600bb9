import { parsePlaneConfig } from './config';
import { createLogger } from './log';
import { installRuntimeLogger } from './lifecycle-worker';
import { startManagementPlane, type PlaneSummary } from './management-plane';

/** What the plane tells a parent that started it with an IPC channel (`npm start`'s launcher). */
export interface PlaneReadyMessage {
  kind: 'ironflow-plane-ready';
  summary: PlaneSummary;
}

function banner(s: PlaneSummary): string {
  const lines = [
    '',
    'Ironflow management plane is ready.',
    `  Temporal        ${s.temporalConnection} (namespace ${s.temporalNamespace})${s.temporalEmbedded ? ', embedded dev server' : ''}`,
    ...(s.temporalUi ? [`  Temporal Web UI ${s.temporalUi}`] : []),
    `  Kubernetes API  ${s.kubeServer}${s.kubeEmbedded ? ', embedded kube-apiserver + etcd + kube-controller-manager' : ''}`,
    ...(s.kubeconfig ? [`  kubeconfig      export KUBECONFIG=${s.kubeconfig}`] : []),
    `  CRDs            ${s.crds.join(', ')}`,
    `  worker          task queue ${s.taskQueue}`,
    `  PXE             ${s.pxe}`,
    ...(s.dhcp ? [`  DHCP            ${s.dhcp}`] : []),
    `  bridge          ${s.bridge}`,
    `  payloads        ${s.codec}`,
    `  health          ${s.health} (live: ${s.runFile.replace(/plane\.json$/, 'health.json')})`,
    `  logs            ${s.logs}`,
    `  process         pid ${s.pid} (pid file ${s.runFile})`,
    'Press Ctrl-C to stop everything this started.',
    '',
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  // Everything the plane writes (Temporal database, etcd, logs, keys) is the operator's alone.
  process.umask(0o077);
  const cfg = parsePlaneConfig(process.argv);
  const log = createLogger({ name: 'ironflow', level: cfg.logLevel });
  installRuntimeLogger(log);
  const plane = await startManagementPlane(cfg, log);
  log.info({ ...plane.summary }, 'ready');
  process.stdout.write(banner(plane.summary));
  const ready: PlaneReadyMessage = { kind: 'ironflow-plane-ready', summary: plane.summary };
  process.send?.(ready);

  let stopping = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal: sig }, 'stopping');
    plane.stop().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // The launcher went away (its IPC channel closed): stop as if told to.
  process.on('disconnect', () => onSignal('SIGTERM'));
}

main().catch((err: unknown) => {
  console.error(`ironflow: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
