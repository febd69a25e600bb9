import { Context } from '@temporalio/activity';
import type { PlaneProbeInput, PlaneProbeResult } from '../../api/plane-probe';

/** Activities the readiness probe runs: they touch nothing but the worker itself. */
export function createDiagnosticActivities() {
  return {
    async echoProbe(input: PlaneProbeInput): Promise<PlaneProbeResult> {
      return { nonce: input.nonce, worker: Context.current().info.taskQueue };
    },
  };
}
export type DiagnosticActivities = ReturnType<typeof createDiagnosticActivities>;
