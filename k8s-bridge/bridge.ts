/**
 * The k8s-bridge: every BareMetalHost add/update/delete becomes a
 * `hostObserved` signal to the host's workflow (`host/<ns>/<name>`), started
 * by signal-with-start if it is not running. It does no provisioning work.
 *
 * Guarantees, and how:
 * - Exactly one workflow per object: the workflow id is derived from the
 *   object (api/names.ts), and signal-with-start on a running id only signals.
 * - Nothing lost across restarts: a starting (or newly elected) bridge lists
 *   every object and signals its current state; the watch then resumes from
 *   the list's resourceVersion. Observations may therefore repeat: the
 *   workflow must ignore one whose resourceVersion it already handled.
 * - Never older after newer: per object, one signal in flight at a time and
 *   only the newest pending state kept (work-queue.ts).
 * - A deleted object never starts a workflow: a deletion is signalled without
 *   start (unless our finalizer still holds the object, i.e. its workflow must
 *   run to release the hardware).
 * - With leader election, only the Lease holder watches and signals.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { KubeConfig } from '@kubernetes/client-node';
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import type { Logger } from 'pino';
import { HOST_FINALIZER, HOST_MESSAGES, type HostObservation, type HostWorkflowInput } from '../api/host';
import { TASK_QUEUES, workflowIdFor } from '../api/names';
import { addFinalizer, BAREMETALHOST_RESOURCE } from './finalizers';
import { LeaderElector, type LeaderElectionOptions } from './leader-election';
import { type BareMetalHostObject, observeHost, recordedStatus } from './observe-host';
import { ResourceWatcher, type KubeObject, type WatchEventType } from './watch';
import { CoalescingQueue } from './work-queue';

/** Workflow type name of the host lifecycle (registered by the lifecycle worker). */
export const HOST_WORKFLOW_TYPE = 'hostLifecycle';

export interface BridgeOptions {
  kc: KubeConfig;
  client: Client;
  /** Task queue of the lifecycle workflows; TASK_QUEUES.lifecycle by default. */
  taskQueue?: string;
  /** Watch one namespace only; all namespaces by default. */
  namespace?: string;
  /** Lease holder identity; host name + random suffix by default. */
  identity?: string;
  log: Logger;
  /** When set, only the holder of this Lease acts. */
  leaderElection?: LeaderElectionOptions;
  /** Signals in flight at once (across objects). */
  concurrency?: number;
  /**
   * How often every object's workflow is checked to be running (0 = never).
   * A run an operator terminated, or one that failed, is started again from
   * the object's status, as a controller's resync would. Default 5 minutes.
   */
  resyncIntervalMs?: number;
}

export interface Bridge {
  stop(): Promise<void>;
  /**
   * Resolves once the bridge has signalled the state of every object that
   * existed when it started (or, with leader election, once it knows it is a
   * standby).
   */
  ready: Promise<void>;
  isLeader(): boolean;
  /** Counters for tests and benchmarks. */
  stats(): { signals: number; skipped: number; errors: number; finalizerMs: number; signalMs: number; restarted: number };
}

type HostEvent = { type: WatchEventType; object: BareMetalHostObject & KubeObject };

/** What the workflow acts on, without resourceVersion: equal fingerprints need no signal. */
export function observationFingerprint(o: HostObservation): string {
  const { resourceVersion: _rv, ...rest } = o;
  return JSON.stringify(rest);
}

export function startBridge(opts: BridgeOptions): Bridge {
  const taskQueue = opts.taskQueue ?? TASK_QUEUES.lifecycle;
  const identity = opts.identity ?? `${hostname()}-${randomBytes(3).toString('hex')}`;
  const log = opts.log.child({ component: 'k8s-bridge', identity });
  const counters = { signals: 0, skipped: 0, errors: 0, finalizerMs: 0, signalMs: 0, restarted: 0 };
  /** Fingerprint of the observation last delivered per object (everything but resourceVersion). */
  const delivered = new Map<string, string>();
  /** The newest version of every object seen, for the resync. */
  const latest = new Map<string, BareMetalHostObject & KubeObject>();
  let session: { watcher: ResourceWatcher<BareMetalHostObject & KubeObject>; queue: CoalescingQueue<HostEvent> } | undefined;

  async function handle(key: string, event: HostEvent): Promise<void> {
    let object = event.object;
    const [namespace = '', name = ''] = key.split('/');
    const ref = { namespace, name };
    const workflowId = workflowIdFor('BareMetalHost', namespace, name);
    if (event.type === 'DELETED') {
      delivered.delete(key);
      const observation: HostObservation = { ...observeHost(object), deleting: true };
      await signalOnly(workflowId, observation);
      return;
    }
    const deleting = object.metadata.deletionTimestamp != null;
    const held = (object.metadata.finalizers ?? []).includes(HOST_FINALIZER);
    if (!deleting && !held) {
      const t0 = Date.now();
      const patched = await addFinalizer(opts.kc, object);
      counters.finalizerMs += Date.now() - t0;
      // Conflict or gone: the watch brings the newer version, handled then.
      if (!patched) return;
      object = patched as typeof object;
    }
    const observation = observeHost(object);
    // Status writes (the workflow's own) and other controllers' metadata bump
    // resourceVersion without changing what the workflow acts on: not
    // signalling them keeps histories short and, above all, keeps a status
    // write from waking the workflow's error backoff at once.
    const fingerprint = observationFingerprint(observation);
    if (delivered.get(key) === fingerprint) {
      counters.skipped++;
      return;
    }
    if (deleting && !held) {
      // Its workflow already let go (or never held it): tell a running one, start none.
      await signalOnly(workflowId, observation);
    } else {
      // The status is the durable record: a run this starts (first, or after a
      // terminate or a lost Temporal database) adopts the host from it.
      const recorded = recordedStatus(object);
      const input: HostWorkflowInput = { ref, observation, ...(recorded ? { recorded } : {}) };
      const t0 = Date.now();
      await opts.client.workflow.signalWithStart(HOST_WORKFLOW_TYPE, {
        workflowId,
        taskQueue,
        args: [input],
        signal: HOST_MESSAGES.observed,
        signalArgs: [observation],
      });
      counters.signalMs += Date.now() - t0;
      counters.signals++;
    }
    delivered.set(key, fingerprint);
    log.debug({ workflowId, resourceVersion: observation.resourceVersion, deleting: observation.deleting }, 'signalled host workflow');
  }

  async function signalOnly(workflowId: string, observation: HostObservation): Promise<void> {
    try {
      await opts.client.workflow.getHandle(workflowId).signal(HOST_MESSAGES.observed, observation);
      counters.signals++;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return; // finished or never started: nothing to tell
      throw err;
    }
  }

  let resolveReady!: () => void;
  let rejectReady!: (err: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    resolveReady = resolve;
    rejectReady = reject;
  });
  ready.catch(() => undefined);

  async function startActing(): Promise<void> {
    delivered.clear();
    const queue = new CoalescingQueue<HostEvent>({
      concurrency: opts.concurrency ?? 16,
      handle,
      onError: (key, err, attempt) => {
        counters.errors++;
        log.warn({ host: key, attempt, err: (err as Error).message.split('\n')[0] }, 'could not signal host workflow; retrying');
      },
    });
    let firstSync = true;
    const watcher = new ResourceWatcher<BareMetalHostObject & KubeObject>({
      kc: opts.kc,
      resource: BAREMETALHOST_RESOURCE,
      namespace: opts.namespace,
      log,
      onEvent: (type, object) => {
        const key = `${object.metadata.namespace ?? ''}/${object.metadata.name ?? ''}`;
        if (type === 'DELETED') latest.delete(key);
        else latest.set(key, object);
        queue.add(key, { type, object });
      },
      onSynced: () => {
        if (!firstSync) return;
        firstSync = false;
        void queue.idle().then(() => {
          log.info({ namespace: opts.namespace ?? '(all)', taskQueue }, 'k8s-bridge synced: every existing BareMetalHost signalled');
          resolveReady();
        });
      },
    });
    session = { watcher, queue };
    watcher.start();
    scheduleResync();
  }

  /**
   * Starts again, from the object's status, every host workflow that is not
   * running (terminated from the UI, failed, lost with a Temporal database)
   * while its object still wants one.
   */
  async function resync(): Promise<void> {
    for (const [key, object] of [...latest]) {
      if (!session) return;
      if (object.metadata.deletionTimestamp != null && !(object.metadata.finalizers ?? []).includes(HOST_FINALIZER)) continue;
      const [namespace = '', name = ''] = key.split('/');
      let running = false;
      try {
        const d = await opts.client.workflow.getHandle(workflowIdFor('BareMetalHost', namespace, name)).describe();
        running = d.status.name === 'RUNNING';
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) {
          log.warn({ host: key, err: (err as Error).message.split('\n')[0] }, 'resync: could not describe host workflow');
          continue;
        }
      }
      if (running) continue;
      log.warn({ host: key }, 'resync: host workflow is not running; starting it again from the object\'s status');
      counters.restarted++;
      delivered.delete(key);
      session.queue.add(key, { type: 'MODIFIED', object });
    }
  }
  let resyncTimer: NodeJS.Timeout | undefined;
  const resyncEvery = opts.resyncIntervalMs ?? 5 * 60_000;
  function scheduleResync(): void {
    if (resyncEvery <= 0 || !session) return;
    resyncTimer = setTimeout(() => {
      resync()
        .catch((err: unknown) => log.warn({ err: (err as Error).message }, 'resync failed'))
        .finally(scheduleResync);
    }, resyncEvery);
    resyncTimer.unref();
  }

  async function stopActing(): Promise<void> {
    if (resyncTimer) clearTimeout(resyncTimer);
    resyncTimer = undefined;
    const current = session;
    session = undefined;
    latest.clear();
    if (!current) return;
    await current.watcher.stop();
    await current.queue.close();
  }

  let elector: LeaderElector | undefined;
  if (opts.leaderElection) {
    elector = new LeaderElector(opts.kc, identity, opts.leaderElection, { onStartedLeading: startActing, onStoppedLeading: stopActing }, log);
    elector.start();
    void elector.firstDecision.then((leader) => {
      if (!leader) {
        log.info({ lease: `${opts.leaderElection?.namespace}/${opts.leaderElection?.name ?? 'ironflow-k8s-bridge'}` }, 'standing by: another bridge holds the Lease');
        resolveReady();
      }
    });
  } else {
    startActing().catch((err: unknown) => rejectReady(err as Error));
  }

  return {
    ready,
    isLeader: () => (elector ? elector.isLeader() : session !== undefined),
    stats: () => ({ ...counters }),
    async stop() {
      if (elector) await elector.stop();
      else await stopActing();
      resolveReady();
    },
  };
}
