import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { AgentReportSignal } from '../../api/agent';
import { HOST_MESSAGES, type HostObservation, type HostStatus } from '../../api/host';

/** The bridge saw the BareMetalHost (added, changed, deletion requested). */
export const hostObservedSignal = defineSignal<[HostObservation]>(HOST_MESSAGES.observed);
/** The agent API forwards an authenticated agent report. */
export const agentReportSignal = defineSignal<[AgentReportSignal]>(HOST_MESSAGES.agentReport);
/** Operator: stop waiting out the error backoff and retry the failed step now. */
export const retryNowSignal = defineSignal<[{ by: string }]>(HOST_MESSAGES.retryNow);
/** Operator: approve erasing a host marked as holding precious data. Returns the approval recorded. */
export const approveEraseUpdate = defineUpdate<{ approver: string; at: string }, [{ approver: string; reason?: string }]>(HOST_MESSAGES.approveErase);
/** Full status, as written to the object. */
export const hostStatusQuery = defineQuery<HostStatus & { waitingFor?: string }>(HOST_MESSAGES.status);
