/**
 * hostLifecycle: one long-lived workflow per BareMetalHost (id host/<ns>/<name>).
 * This file wires the message handlers and runs the state loop; decisions
 * are in decide.ts, the per-state operations in operations.ts.
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
import type { HostObservation, HostState, HostStatus, HostWorkflowInput } from '../../api/host';
import { plane } from './activities';
import { afterRegistration, decideStable, errorTypeFor, holdReason, initialState, isNewerObservation, retryDelayMs, STABLE_STATES } from './decide';
import { agentReportSignal, approveEraseUpdate, hostObservedSignal, hostStatusQuery, retryNowSignal } from './messages';
import { HostOperations, OperationInterrupted, type HostContext } from './operations';
import { upsertHostSearchAttributes } from './search-attributes';

/** Past this many events a resting host continues as new, so histories stay small. */
const MAX_HISTORY_EVENTS = 2_000;

function freshStatus(): HostStatus {
  return {
    provisioning: { state: 'registering' },
    operationalStatus: 'OK',
    errorCount: 0,
    poweredOn: false,
    lastUpdated: new Date().toISOString(),
  };
}

function failureMessage(err: unknown): { message: string; type?: string } {
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
  const ctx: HostContext = {
    ref,
    obs: input.observation,
    obsVersion: 0,
    status: input.carried ? { ...input.carried } : freshStatus(),
    reports: [],
    retryRequested: false,
    waitingFor: undefined,
    approval: undefined,
  };

  setHandler(hostObservedSignal, (o: HostObservation) => {
    if (!isNewerObservation(ctx.obs, o)) return;
    ctx.obs = o;
    ctx.obsVersion++;
  });
  setHandler(agentReportSignal, (r: AgentReportSignal) => {
    // Progress lines only update what the status says we wait for; results are kept for the waiter.
    if (r.report.status === 'progress') {
      ctx.waitingFor = `agent ${r.report.type}: ${r.report.message}${r.report.percent !== undefined ? ` (${r.report.percent}%)` : ''}`;
      return;
    }
    ctx.reports.push(r);
    if (ctx.reports.length > 16) ctx.reports.shift();
  });
  setHandler(retryNowSignal, ({ by }) => {
    log.info('retry requested', { by });
    ctx.retryRequested = true;
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
      },
    },
  );
  setHandler(hostStatusQuery, () => ({ ...ctx.status, waitingFor: ctx.waitingFor }));

  const ops = new HostOperations(ctx);
  let state: HostState = initialState(input.carried);
  /** Set once registration succeeded in this host's life; a never-registered host needs no power-off on delete. */
  let everRegistered = state !== 'registering';

  /** Commits a transition; `why` stays as errorMessage (maintenance says which disk failed). */
  const transition = async (next: HostState, reason: string, why?: string) => {
    log.info('transition', { from: state, to: next, reason });
    state = next;
    ctx.status.provisioning = { ...ctx.status.provisioning, state: next };
    ctx.status.errorType = undefined;
    ctx.status.errorMessage = why;
    ctx.status.errorCount = 0;
    ctx.status.operationalStatus = next === 'maintenance' ? 'error' : 'OK';
    ctx.waitingFor = undefined;
    await ops.writeStatus();
    upsertHostSearchAttributes(ctx, next);
  };

  upsertHostSearchAttributes(ctx, state);
  await ops.writeStatus();

  for (;;) {
    const hold = holdReason(ctx.obs);
    if (hold) {
      ctx.waitingFor = hold;
      if (ctx.obs.detached && ctx.status.operationalStatus !== 'detached') {
        ctx.status.operationalStatus = 'detached';
        await ops.writeStatus();
      }
      await condition(() => holdReason(ctx.obs) === undefined);
      if (ctx.status.operationalStatus === 'detached') ctx.status.operationalStatus = 'OK';
      ctx.waitingFor = undefined;
      continue;
    }

    if (ctx.obs.deleting) {
      // A detached host is let go without touching the hardware (Metal3 semantics).
      if (ctx.obs.detached || (state === 'registering' && !everRegistered)) {
        if (state !== 'deleting') await transition('deleting', ctx.obs.detached ? 'deleted while detached' : 'deleted before registration succeeded: hardware never touched');
      } else if (state === 'provisioning') {
        await transition('deprovisioning', 'deleted while provisioning: a partly written disk is erased first');
      } else if (state === 'registering' || state === 'inspecting') {
        await transition('powering off before delete', 'deletion requested');
      }
    }

    if (state === 'deleting') {
      await plane.releaseHost({ host: ref });
      ctx.waitingFor = 'released: finalizer removed';
      return ctx.status;
    }

    try {
      switch (state) {
        case 'registering': {
          await ops.register();
          everRegistered = true;
          const next = afterRegistration(ctx.obs, ctx.status);
          await transition(next.next, next.reason);
          break;
        }
        case 'inspecting':
          await ops.inspect();
          await transition('available', 'inspection finished');
          break;
        case 'provisioning':
          await ops.provision();
          await transition('provisioned', `image ${ctx.status.provisioning.image?.url ?? ''} written and verified`);
          break;
        case 'deprovisioning': {
          const outcome = await ops.deprovision();
          if (outcome.kind === 'disk-failed') {
            await transition('maintenance', outcome.message, outcome.message);
          } else {
            await transition(ctx.obs.deleting ? 'powering off before delete' : 'available', outcome.message);
          }
          break;
        }
        case 'powering off before delete':
          await ops.setPower('off');
          await transition('deleting', 'powered off');
          break;
        default: {
          if (!STABLE_STATES.includes(state)) throw ApplicationFailure.nonRetryable(`host workflow reached unknown state ${state}`);
          const action = decideStable(state, ctx.obs, ctx.status);
          if (action.kind === 'transition') {
            await transition(action.next, action.reason);
          } else if (action.kind === 'power') {
            await ops.setPower(action.state);
            if (ctx.status.errorType) {
              ctx.status.errorType = undefined;
              ctx.status.errorMessage = undefined;
              ctx.status.errorCount = 0;
              ctx.status.operationalStatus = state === 'maintenance' ? 'error' : 'OK';
            }
            await ops.writeStatus();
          } else {
            ctx.waitingFor = action.reason;
            if (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > (input.historyLimit ?? MAX_HISTORY_EVENTS)) {
              await condition(allHandlersFinished);
              await continueAsNew<typeof hostLifecycle>({ ref, observation: ctx.obs, carried: ctx.status, historyLimit: input.historyLimit });
            }
            const seen = ctx.obsVersion;
            await condition(() => ctx.obsVersion !== seen);
          }
        }
      }
    } catch (err) {
      // continueAsNew() works by throwing: it must leave the loop, not become an error state.
      if (isCancellation(err) || err instanceof ContinueAsNew) throw err;
      if (err instanceof OperationInterrupted) {
        log.info('operation interrupted', { state, reason: err.message });
        continue;
      }
      const { message, type } = failureMessage(err);
      const step = ops.lastStep === 'power' || type === 'BmcActionNotApplied' ? 'power' : 'operation';
      ctx.status.errorCount += 1;
      ctx.status.errorType = errorTypeFor(state, step);
      ctx.status.errorMessage = message;
      ctx.status.operationalStatus = 'error';
      const delay = retryDelayMs(ctx.status.errorCount);
      ctx.waitingFor = `${ctx.status.errorType}: retrying in ${Math.round(delay / 1000)} s, on a spec change, or on retryNow`;
      log.warn('step failed', { state, errorType: ctx.status.errorType, errorCount: ctx.status.errorCount, failureType: type });
      // Cleared before the status write: a retryNow sent by someone who saw
      // this error in the status must not be lost.
      ctx.retryRequested = false;
      const seen = ctx.obsVersion;
      await ops.writeStatus();
      await condition(() => ctx.retryRequested || ctx.obsVersion !== seen, delay);
      ctx.retryRequested = false;
    }
  }
}
