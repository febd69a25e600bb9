/**
 * A stand-in for the host workflow in agent API tests: same id scheme
 * (host/<ns>/<name>), same agentReport signal, and it only records what
 * arrives, so a test can count the signals and the history events a flood
 * or a forgery made. Bundled by the test's own worker.
 */
import { condition, defineQuery, defineSignal, setHandler } from '@temporalio/workflow';
import type { AgentReportSignal } from '../../../api/agent';
import { HOST_MESSAGES } from '../../../api/host';

export const sinkReportsQuery = defineQuery<AgentReportSignal[]>('sinkReports');

export async function agentReportSink(): Promise<void> {
  const got: AgentReportSignal[] = [];
  setHandler(defineSignal<[AgentReportSignal]>(HOST_MESSAGES.agentReport), (s) => {
    got.push(s);
  });
  setHandler(sinkReportsQuery, () => got);
  await condition(() => false);
}
