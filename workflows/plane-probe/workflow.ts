import { proxyActivities } from '@temporalio/workflow';
import type { DiagnosticActivities } from '../../activities/diagnostics/probe';
import type { PlaneProbeInput, PlaneProbeResult } from '../../api/plane-probe';

const { echoProbe } = proxyActivities<DiagnosticActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { maximumAttempts: 3 },
});

/**
 * The management plane's "ready" check: a workflow task and an activity task
 * both have to be served by this plane's worker for it to complete.
 */
export async function planeProbe(input: PlaneProbeInput): Promise<PlaneProbeResult> {
  return echoProbe(input);
}
