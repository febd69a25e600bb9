/**
 * Production `onReport` for the agent API: the report goes to the host
 * workflow (`host/<ns>/<name>`) as the `agentReport` signal. If the signal
 * fails the API answers 503, the command stays pending and the agent retries.
 */
import type { Client } from '@temporalio/client';
import type { AgentReportSignal } from '../../api/agent';
import { HOST_MESSAGES, type HostRef } from '../../api/host';
import { workflowIdFor } from '../../api/names';

export function temporalReportForwarder(client: Client): (host: HostRef, signal: AgentReportSignal) => Promise<void> {
  return async (host, signal) => {
    await client.workflow.getHandle(workflowIdFor('BareMetalHost', host.namespace, host.name)).signal(HOST_MESSAGES.agentReport, signal);
  };
}
