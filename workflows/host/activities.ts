import { proxyActivities } from '@temporalio/workflow';
import { NON_RETRYABLE_FAILURES } from '../../api/errors';
import type { HostActivities } from '../../api/host-activities';

const retry = {
  initialInterval: '2 seconds',
  backoffCoefficient: 2,
  maximumInterval: '30 seconds',
  maximumAttempts: 5,
  nonRetryableErrorTypes: NON_RETRYABLE_FAILURES,
};

/** BMC calls: power actions poll until verified (heartbeating), so they get minutes. */
export const bmc = proxyActivities<Pick<HostActivities, 'bmcCheckAccess' | 'bmcSetPower' | 'bmcReboot' | 'bmcSetNextBoot'>>({
  startToCloseTimeout: '3 minutes',
  heartbeatTimeout: '30 seconds',
  retry,
});

/** PXE registry, agent command queue and Kubernetes writes: quick, local to the plane. */
export const plane = proxyActivities<Pick<HostActivities, 'prepareBoot' | 'clearBoot' | 'sendAgentCommand' | 'writeHostStatus' | 'releaseHost'>>({
  startToCloseTimeout: '30 seconds',
  retry: { ...retry, maximumAttempts: 10 },
});
