import { setTimeout as sleep } from 'node:timers/promises';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { HostObservation, HostSpec, HostState, HostStatus } from '../../api/host';
import { HOST_MESSAGES } from '../../api/host';
import { workflowIdFor } from '../../api/names';
import { bundleWorkflows } from '../../workers/lifecycle-worker';
import { uniqueSuffix, type TemporalTestContext } from './env';
import { createFakeWorld, type FakeWorld } from './fake-host-activities';

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
/** Bundled once per test file: ~2 s each time otherwise. */
export const sharedBundle = () => (bundle ??= bundleWorkflows());

let rv = 100;
/** An observation as the bridge would send it; every call gets a higher resourceVersion. */
export function observation(spec: Partial<HostSpec> = {}, extra: Partial<Omit<HostObservation, 'spec'>> = {}): HostObservation {
  return {
    generation: 1,
    resourceVersion: String(++rv),
    spec: {
      online: false,
      bmc: { address: 'redfish+http://127.0.0.1:8000/redfish/v1/Systems/1', credentialsName: 'bmc-secret' },
      bootMACAddress: '52:54:00:00:00:01',
      automatedCleaningMode: 'metadata',
      ...spec,
    },
    paused: false,
    detached: false,
    preciousData: false,
    deleting: false,
    ...extra,
  };
}

export const IMAGE = {
  url: 'http://127.0.0.1:8080/files/os.img',
  checksum: 'a'.repeat(64),
  checksumType: 'sha256' as const,
};

export interface HostRun {
  /** The observation last sent (what the bridge would send again). */
  lastObservation?: HostObservation;
  client: Client;
  world: FakeWorld;
  handle: WorkflowHandle;
  namespace: string;
  name: string;
  observe(o: HostObservation): Promise<void>;
  status(): Promise<HostStatus & { waitingFor?: string }>;
  /** Polls the status query until `pred` holds; the error shows the last status seen. */
  waitFor(pred: (s: HostStatus & { waitingFor?: string }) => boolean, what: string, timeoutMs?: number): Promise<HostStatus & { waitingFor?: string }>;
  waitForState(state: HostState, timeoutMs?: number): Promise<HostStatus & { waitingFor?: string }>;
  /**
   * What an operator's Terminate button does, then what the bridge does next:
   * the run is terminated and a new one is started by signal-with-start with
   * the object's recorded status (by default the last status the workflow wrote).
   */
  terminateAndRestart(recorded?: HostStatus): Promise<void>;
}

/**
 * Runs `body` with a real worker (this test's task queue, the fake world's
 * activities) and one host workflow started by signal-with-start, as the
 * bridge starts it.
 */
export async function withHostWorkflow(
  ctxPromise: Promise<TemporalTestContext> | TemporalTestContext,
  first: HostObservation,
  body: (run: HostRun) => Promise<void>,
  setup?: (world: FakeWorld) => void,
  extraInput: { historyLimit?: number; recorded?: HostStatus } = {},
): Promise<void> {
  const ctx = await ctxPromise;
  const namespace = 'lab';
  const name = `host-${uniqueSuffix()}`;
  const world = createFakeWorld(() => ctx.client, { namespace, name });
  setup?.(world);
  const worker = await Worker.create({
    connection: ctx.nativeConnection,
    namespace: ctx.namespace,
    taskQueue: ctx.taskQueue,
    workflowBundle: await sharedBundle(),
    activities: world.activities,
  });
  const workflowId = workflowIdFor('BareMetalHost', namespace, name);
  await worker.runUntil(async () => {
    const handle = await ctx.client.workflow.signalWithStart('hostLifecycle', {
      workflowId,
      taskQueue: ctx.taskQueue,
      args: [{ ref: { namespace, name }, observation: first, ...extraInput }],
      signal: HOST_MESSAGES.observed,
      signalArgs: [first],
    });
    // The latest run (continue-as-new starts new ones), not the first.
    const status = () => ctx.client.workflow.getHandle(workflowId).query<HostStatus & { waitingFor?: string }>(HOST_MESSAGES.status);
    const waitFor: HostRun['waitFor'] = async (pred, what, timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs;
      let last: (HostStatus & { waitingFor?: string }) | undefined;
      while (Date.now() < deadline) {
        last = await status();
        if (pred(last)) return last;
        await sleep(50);
      }
      throw new Error(`timed out waiting for ${what}; last status: ${JSON.stringify(last)}`);
    };
    const run: HostRun = {
      client: ctx.client,
      world,
      handle,
      namespace,
      name,
      observe: (o) => {
        run.lastObservation = o;
        return ctx.client.workflow.getHandle(workflowId).signal(HOST_MESSAGES.observed, o);
      },
      status,
      waitFor,
      waitForState: (state, timeoutMs) => waitFor((s) => s.provisioning.state === state, `state ${state}`, timeoutMs),
      terminateAndRestart: async (recorded) => {
        // A run that is already gone (terminated, failed) is what a lost run looks like: start anew all the same.
        await ctx.client.workflow.getHandle(workflowId).terminate('operator pressed Terminate (test)').catch(() => undefined);
        const latest = observation(first.spec, { paused: first.paused, detached: first.detached, preciousData: first.preciousData, deleting: first.deleting });
        const rec = recorded ?? world.lastStatus();
        run.handle = await ctx.client.workflow.signalWithStart('hostLifecycle', {
          workflowId,
          taskQueue: ctx.taskQueue,
          args: [{ ref: { namespace, name }, observation: run.lastObservation ?? latest, ...(rec ? { recorded: rec } : {}), ...(extraInput.historyLimit ? { historyLimit: extraInput.historyLimit } : {}) }],
          signal: HOST_MESSAGES.observed,
          signalArgs: [run.lastObservation ?? latest],
        });
      },
    };
    await body(run);
  });
}
