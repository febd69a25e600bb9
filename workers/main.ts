import { parsePlaneConfig } from './config';
import { createLogger } from './log';
import { installRuntimeLogger } from './lifecycle-worker';
import { startManagementPlane, type PlaneSummary } from './management-plane';

function banner(s: PlaneSummary): string {
  const lines = [
    '',
    'Ironflow management plane is ready.',
    `  Temporal        ${s.temporalConnection} (namespace ${s.temporalNamespace})${s.temporalEmbedded ? ', embedded dev server' : ''}`,
    ...(s.temporalUi ? [`  Temporal Web UI ${s.temporalUi}`] : []),
    `  Kubernetes API  ${s.kubeServer}${s.kubeEmbedded ? ', embedded kube-apiserver + etcd' : ''}`,
    ...(s.kubeconfig ? [`  kubeconfig      export KUBECONFIG=${s.kubeconfig}`] : []),
    `  CRDs            ${s.crds.join(', ')}`,
    `  worker          task queue ${s.taskQueue}`,
    `  PXE             ${s.pxe}`,
    `  bridge          ${s.bridge}`,
    `  lab             ${s.lab}`,
    `  payloads        ${s.codec}`,
    `  logs            ${s.logs}`,
    'Press Ctrl-C to stop everything this started.',
    '',
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  const cfg = parsePlaneConfig(process.argv);
  const log = createLogger({ name: 'ironflow', level: cfg.logLevel });
  installRuntimeLogger(log);
  const plane = await startManagementPlane(cfg, log);
  log.info({ ...plane.summary }, 'ready');
  process.stdout.write(banner(plane.summary));

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
}

main().catch((err: unknown) => {
  console.error(`ironflow: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
