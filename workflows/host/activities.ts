import { proxyActivities } from '@temporalio/workflow';
import { NON_RETRYABLE_FAILURES } from '../../api/errors';
import type { HostActivities, HostAgentSessionActivities } from '../../api/host-activities';

/**
 * BMC calls: few attempts, short intervals. The workflow owns the long retry
 * (its error state with backoff), so a BMC outage shows in status within
 * seconds instead of hiding behind minutes of activity retries. Power actions
 * poll until verified and heartbeat, so they get minutes per attempt.
 */
export const bmc = proxyActivities<Pick<HostActivities, 'bmcCheckAccess' | 'bmcSetPower' | 'bmcReboot' | 'bmcSetNextBoot'>>({
  startToCloseTimeout: '3 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '10 seconds', maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE_FAILURES },
});

/**
 * Writes to the management cluster and the plane's own stores: retried until
 * they succeed (no attempt limit), because giving up would lose the record.
 * While the Kubernetes API is down the workflow waits here, durably, and goes
 * on when it returns; only a non-retryable failure (a refused write) comes
 * back to the workflow, which records it and keeps running.
 */
export const plane = proxyActivities<
  Pick<HostActivities, 'prepareBoot' | 'clearBoot' | 'writeHostStatus' | 'releaseHost'> & HostAgentSessionActivities
>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', nonRetryableErrorTypes: NON_RETRYABLE_FAILURES },
});
