/**
 * hostLifecycle: one long-lived workflow per BareMetalHost (id host/<ns>/<name>).
 * This file wires the message handlers and carries out decide.ts's decisions;
 * transitions are committed in one place (commit). The steps are in
 * operations.ts.
 *
 * Nothing a step does can fail the run: every failure becomes the error
 * state of the host, retried with backoff, and the writes that record it are
 * retried until the Kubernetes API takes them. A new run (after a terminate,
 * reset, failure or a lost Temporal database) starts from the object's
 * recorded status and adopts the host; every wait checks whether the history
 * is long enough to continue as new, carrying everything the object does not
 * record.
 */
import {
  ApplicationFailure,
  ContinueAsNew,
  allHandlersFinished,
  condition,
  continueAsNew,
  isCancellation,
  log,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { AgentReportSignal } from '../../api/agent';
import type { HostCarried, HostEvent, HostFailure, HostObservation, HostState, HostStatus, HostWorkflowInput } from '../../api/host';
import type { HostErrorType } from '../../api/errors';
import { plane } from './activities';
import { afterStep, decideHost, errorEventReason, errorTypeFor, isNewerObservation, retryDelayMs, specChanged, startingState, type HostFacts, type HostStep } from './decide';
import { agentReportSignal, approveEraseUpdate, hostObservedSignal, hostStatusQuery, retryNowSignal } from './messages';
import { HostOperations, OperationInterrupted, type HostContext } from './operations';
import { upsertHostSearchAttributes } from './search-attributes';

/** Past this many events a waiting host continues as new, so histories stay small. */
const MAX_HISTORY_EVENTS = 2_000;
/** A run never continues as new before it has done this much (a tiny test limit must not loop). */
const MIN_HISTORY_BEFORE_CONTINUE = 20;
/** How long a failed finalizer release waits before it is tried again. */
const RELEASE_RETRY_MS = 30_000;

function freshStatus(): HostStatus {
  return { provisioning: { state: 'registering' }, operationalStatus: 'OK', errorCount: 0, poweredOn: false, lastUpdated: new Date().toISOString() };
}

/** The recorded status as this run's starting point (a copy; odd shapes made safe). */
function adoptedStatus(recorded: HostStatus): HostStatus {
  return {
    ...recorded,
    provisioning: { ...recorded.provisioning },
    operationalStatus: recorded.operationalStatus ?? 'OK',
    errorCount: Number.isInteger(recorded.errorCount) ? recorded.errorCount : 0,
    poweredOn: recorded.poweredOn === true,
    lastUpdated: recorded.lastUpdated ?? new Date().toISOString(),
  };
}

function failureOf(err: unknown): { message: string; type?: string } {
  if (err instanceof ApplicationFailure) return { message: err.message, type: err.type ?? undefined };
  if (err instanceof Error) {
    // ActivityFailure wraps the activity's ApplicationFailure as its cause.
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof ApplicationFailure) return { message: cause.message, type: cause.type ?? undefined };
    return { message: err.message };
  }
  return { message: String(err) };
}

export async function hostLifecycle(input: HostWorkflowInput): Promise<HostStatus> {
  const ref = input.ref;
  const carried = input.carried;
  const start = carried ? { state: carried.status.provisioning.state, reason: 'continued as new' } : startingState(input.recorded);
  const ctx: HostContext = {
    ref,
    obs: input.observation,
    status: carried ? carried.status : input.recorded ? adoptedStatus(input.recorded) : freshStatus(),
    adopted: carried?.adopted ?? false,
    everRegistered: carried?.everRegistered ?? start.state !== 'registering',
    session: carried?.session,
    reports: carried?.reports ?? [],
    approval: carried?.approval,
    awaitingApproval: false,
    // A continued run carries its session; only a fresh run asks the plane's store.
    sessionLookedUp: carried !== undefined,
    waitingFor: undefined,
  };
  let state: HostState = start.state;
  let failure: HostFailure | undefined = carried?.failure;
  // A recorded error from an earlier run is retried now: this run has not tried yet.
  if (!carried && input.recorded?.errorType) failure = { step: 'register', retryAtMs: Date.now() };
  let retryRequested = false;
  /** Bumped by every signal: waits wake on it to re-check continue-as-new and their condition. */
  let wakeups = 0;

  const ops = new HostOperations(ctx, (pred, timeoutMs) => waitUntil(pred, timeoutMs));

  setHandler(hostObservedSignal, (o: HostObservation) => {
    wakeups++;
    if (!isNewerObservation(ctx.obs, o)) return;
    // A spec change may be the fix for a failed step: retry it now, not after the backoff.
    if (specChanged(ctx.obs, o)) retryRequested = true;
    ctx.obs = o;
  });
  setHandler(agentReportSignal, (r: AgentReportSignal) => {
    wakeups++;
    if (r.report.status === 'progress') {
      ctx.waitingFor = `agent ${r.report.type}: ${r.report.message}${r.report.percent !== undefined ? ` (${r.report.percent}%)` : ''}`;
      return;
    }
    ops.acceptReport(r);
  });
  setHandler(retryNowSignal, ({ by }) => {
    wakeups++;
    log.info('retry requested', { by });
    retryRequested = true;
  });
  setHandler(
    approveEraseUpdate,
    ({ approver, reason }) => {
      ctx.approval = { approver, at: new Date().toISOString() };
      log.info('erase approved', { approver, reason });
      return ctx.approval;
    },
    {
      validator: ({ approver }) => {
        if (!approver || !approver.trim()) throw new Error('approveErase needs a non-empty approver (who takes responsibility for the erase)');
        if (!ctx.awaitingApproval) throw new Error(`nothing waits for an erase approval on this host (state ${state}); approve when its status says it waits for one`);
      },
    },
  );
  setHandler(hostStatusQuery, () => ({ ...ctx.status, waitingFor: ctx.waitingFor }));

  const carry = (): HostCarried => ({
    status: ctx.status,
    adopted: ctx.adopted,
    everRegistered: ctx.everRegistered,
    ...(failure ? { failure } : {}),
    ...(ctx.approval ? { approval: ctx.approval } : {}),
    ...(ctx.session ? { session: ctx.session } : {}),
    reports: ctx.reports,
  });

  async function maybeContinueAsNew(): Promise<void> {
    const info = workflowInfo();
    const limit = input.historyLimit ?? MAX_HISTORY_EVENTS;
    if (info.historyLength < MIN_HISTORY_BEFORE_CONTINUE) return;
    if (!info.continueAsNewSuggested && info.historyLength <= limit) return;
    await condition(allHandlersFinished);
    await continueAsNew<typeof hostLifecycle>({ ref, observation: ctx.obs, carried: carry(), ...(input.historyLimit ? { historyLimit: input.historyLimit } : {}) });
  }

  /** Every wait of the workflow: wakes on each signal to check continue-as-new, then waits on. */
  async function waitUntil(pred: () => boolean, timeoutMs?: number): Promise<boolean> {
    const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    for (;;) {
      if (pred()) return true;
      await maybeContinueAsNew();
      const left = deadline === undefined ? undefined : deadline - Date.now();
      if (left !== undefined && left <= 0) return pred();
      const seen = wakeups;
      const woke = await condition(() => pred() || wakeups !== seen, left);
      if (!woke) return pred();
    }
  }

  /** Writes status (and events); a refused write is logged and the run goes on (the next write carries it). */
  async function writeStatus(events: HostEvent[] = []): Promise<void> {
    ctx.status.lastUpdated = new Date().toISOString();
    try {
      await plane.writeHostStatus({ host: ref, status: ctx.status, ...(events.length ? { events } : {}) });
    } catch (err) {
      if (err instanceof ContinueAsNew || isCancellation(err)) throw err;
      log.error('status write refused', { state, error: failureOf(err).message });
    }
  }

  /** The one place a transition is committed: state, cleared error, status + event, search attributes. */
  async function commit(next: HostState, reason: string, event: HostEvent): Promise<void> {
    log.info('transition', { from: state, to: next, reason });
    state = next;
    failure = undefined;
    ctx.status.provisioning = { ...ctx.status.provisioning, state: next };
    ctx.status.errorType = undefined;
    ctx.status.errorMessage = next === 'maintenance' ? reason : undefined;
    ctx.status.errorCount = 0;
    ctx.status.operationalStatus = next === 'maintenance' ? 'error' : 'OK';
    ctx.waitingFor = undefined;
    upsertHostSearchAttributes(ctx, next);
    await writeStatus([event]);
  }

  /** A failed step (or a refused one): the error state, its backoff, status + Warning event. */
  async function fail(step: HostStep, f: { message: string; type?: string }, errorType: HostErrorType): Promise<void> {
    ctx.status.errorCount += 1;
    ctx.status.errorType = errorType;
    ctx.status.errorMessage = f.message;
    ctx.status.operationalStatus = 'error';
    const delay = retryDelayMs(ctx.status.errorCount, Math.random(), ctx.obs.deleting);
    failure = { step, ...(f.type ? { type: f.type } : {}), retryAtMs: Date.now() + delay };
    // Cleared before the status write: a retryNow sent by someone who saw this error must not be lost.
    retryRequested = false;
    log.warn('step failed', { state, step, errorType, errorCount: ctx.status.errorCount, failureType: f.type });
    await writeStatus([{ type: 'Warning', reason: errorEventReason(errorType), message: f.message }]);
  }

  const facts = (): HostFacts => ({
    namespace: ref.namespace,
    state,
    obs: ctx.obs,
    status: ctx.status,
    adopted: ctx.adopted,
    everRegistered: ctx.everRegistered,
    ...(failure ? { failure } : {}),
    retryRequested,
    now: Date.now(),
  });

  upsertHostSearchAttributes(ctx, state);
  if (!carried) {
    log.info('run started', { state, reason: start.reason });
    if (!input.recorded) await writeStatus();
  }

  for (;;) {
    const d = decideHost(facts());
    try {
      switch (d.kind) {
        case 'hold': {
          ctx.waitingFor = d.reason;
          if (d.detached && ctx.status.operationalStatus !== 'detached') {
            ctx.status.operationalStatus = 'detached';
            // Ironflow lets go: the host's boot entries and agent tokens go too.
            await plane.forgetHostBoot({ host: ref });
            ctx.session = undefined;
            await writeStatus([{ type: 'Normal', reason: 'Detached', message: d.reason }]);
          }
          await waitUntil(() => decideHost(facts()).kind !== 'hold');
          if (ctx.status.operationalStatus === 'detached') {
            ctx.status.operationalStatus = ctx.status.errorType ? 'error' : 'OK';
            // Whatever happened while detached, confirm it with the BMC before acting again.
            ctx.adopted = false;
            await writeStatus([{ type: 'Normal', reason: 'Attached', message: 'detached annotation removed: adopting the host again' }]);
          }
          ctx.waitingFor = undefined;
          break;
        }
        case 'release': {
          ctx.waitingFor = d.reason;
          await plane.forgetHostBoot({ host: ref });
          if (state !== 'deleting') await commit('deleting', d.reason, d.event);
          else await writeStatus([d.event]);
          for (;;) {
            try {
              await plane.releaseHost({ host: ref });
              break;
            } catch (err) {
              if (err instanceof ContinueAsNew || isCancellation(err)) throw err;
              log.error('finalizer release refused; trying again', { error: failureOf(err).message });
              await waitUntil(() => false, RELEASE_RETRY_MS);
            }
          }
          ctx.waitingFor = 'released: finalizer removed';
          return ctx.status;
        }
        case 'transition':
          await commit(d.next, d.reason, d.event);
          break;
        case 'refuse':
          await fail(d.step, { message: d.message, type: 'SpecInvalid' }, d.errorType);
          break;
        case 'wait': {
          ctx.waitingFor = d.reason;
          const seen = { wakeups, retry: retryRequested };
          await waitUntil(() => wakeups !== seen.wakeups || retryRequested !== seen.retry, d.untilMs === undefined ? undefined : Math.max(0, d.untilMs - Date.now()));
          break;
        }
        case 'run': {
          // Status tells the truth while retrying: the old error is cleared as the retried step starts.
          if (ctx.status.errorType) {
            ctx.status.errorType = undefined;
            ctx.status.errorMessage = undefined;
            ctx.status.operationalStatus = state === 'maintenance' ? 'error' : 'OK';
            await writeStatus();
          }
          failure = undefined;
          retryRequested = false;
          ctx.waitingFor = d.reason;
          try {
            const outcome = await ops.run(d.step);
            const after = afterStep({ state, obs: ctx.obs, status: ctx.status }, d.step, outcome);
            if (after?.kind === 'transition') {
              await commit(after.next, after.reason, after.event);
            } else {
              ctx.status.errorCount = 0;
              await writeStatus(d.step === 'power-on' || d.step === 'power-off' ? [{ type: 'Normal', reason: d.step === 'power-on' ? 'PowerOn' : 'PowerOff', message: d.reason }] : []);
            }
          } catch (err) {
            if (isCancellation(err) || err instanceof ContinueAsNew) throw err;
            if (err instanceof OperationInterrupted) {
              log.info('step interrupted', { state, step: d.step, reason: err.message });
              break;
            }
            await fail(d.step, failureOf(err), errorTypeFor(state, d.step));
          }
          break;
        }
      }
    } catch (err) {
      // Nothing may fail the run: an activity failure outside a step (a refused
      // write, a plane call) is recorded like a step failure and retried.
      if (isCancellation(err) || err instanceof ContinueAsNew) throw err;
      await fail(d.kind === 'run' || d.kind === 'refuse' ? d.step : 'register', failureOf(err), errorTypeFor(state, 'register'));
    }
  }
}
