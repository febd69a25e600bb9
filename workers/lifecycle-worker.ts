import { type NativeConnection, Runtime, Worker, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { DataConverter } from '@temporalio/common';
import { TASK_QUEUES } from '../api/names';
import { createActivities, createProbeActivities, type ActivityDeps } from '../activities';

/** The workflow code every lifecycle worker runs (host, cluster, ... workflows). */
export const WORKFLOWS_PATH = require.resolve('../workflows');

/**
 * Bundles the workflow code once. The bundler is also the determinism guard:
 * it refuses workflow code that imports Node built-ins.
 */
export async function bundleWorkflows(): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietBundlerLogger });
}

const quietBundlerLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (message: string) => console.warn(message),
  error: (message: string) => console.error(message),
};

export interface LifecycleWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue?: string;
  workflowBundle?: WorkflowBundleWithSourceMap;
  /** Activity dependencies; without them the worker serves only the probe (tests of the worker itself). */
  deps?: ActivityDeps;
  identity?: string;
  dataConverter?: DataConverter;
}

/** A worker serving Ironflow's workflows and activities on one task queue. */
export async function createLifecycleWorker(opts: LifecycleWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: opts.connection,
    namespace: opts.namespace,
    taskQueue: opts.taskQueue ?? TASK_QUEUES.lifecycle,
    ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : { workflowsPath: WORKFLOWS_PATH }),
    activities: opts.deps ? createActivities(opts.deps) : createProbeActivities(),
    ...(opts.identity ? { identity: opts.identity } : {}),
    ...(opts.dataConverter ? { dataConverter: opts.dataConverter } : {}),
  });
}

/** Routes the SDK's own logs (worker state, task failures) into ours. */
export function installRuntimeLogger(log: { info: (o: object, m: string) => void; warn: (o: object, m: string) => void; error: (o: object, m: string) => void }): void {
  Runtime.install({
    // The plane stops its parts in order on SIGINT/SIGTERM (workers/main.ts);
    // the SDK's own handler would stop the worker first, behind its back.
    shutdownSignals: [],
    logger: {
      log: (level, message, meta) => (level === 'ERROR' ? log.error : level === 'WARN' ? log.warn : () => undefined)(meta ?? {}, message),
      trace: () => undefined,
      debug: () => undefined,
      info: () => undefined,
      warn: (message, meta) => log.warn(meta ?? {}, message),
      error: (message, meta) => log.error(meta ?? {}, message),
    },
  });
}
