/**
 * Temporal activities that hand commands to a host's ramdisk agent. The
 * agent pulls them through the agent API (./api.ts) and answers with reports
 * that arrive at the host workflow as `agentReport` signals.
 *
 * User data is resolved here from its Secret reference and kept in memory
 * beside the deploy command; it never enters workflow history, a return
 * value or a log line.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { AgentCommand } from '../../api/agent';
import { FAILURE } from '../../api/errors';
import type { HostRef } from '../../api/host';
import type { HostActivities } from '../../api/host-activities';
import type { AgentCommandStore } from './commands';
import type { AgentTokenStore } from './tokens';

export interface AgentActivityLog {
  info(msg: string, fields?: Record<string, unknown>): void;
}

export interface AgentActivityDeps {
  commands: AgentCommandStore;
  tokens: AgentTokenStore;
  /** Reads the user data Secret (key `userData` or `value`). */
  userData: (namespace: string, secretName: string) => Promise<Buffer>;
  log: AgentActivityLog;
}

export interface SendAgentCommandInput {
  host: HostRef;
  bootId: string;
  command: AgentCommand;
  /** For deploy: the Secret holding user data (a reference, not the data). */
  userData?: { namespace: string; name: string };
}

export function createAgentActivities(deps: AgentActivityDeps) {
  return {
    /** A new boot was prepared: the old boot's token stops working. Safe to repeat. */
    async prepareAgentBoot(input: { host: HostRef; bootId: string }): Promise<void> {
      deps.tokens.prepareBoot(input.host, input.bootId);
    },

    /**
     * Queues a command for the agent of `bootId`. Idempotent by command id: a
     * retried activity changes nothing (logged as 'duplicate'). Another
     * command still pending is a retryable failure (the agent is busy).
     */
    async sendAgentCommand(input: SendAgentCommandInput): Promise<void> {
      const { host, bootId, command } = input;
      const who = `${host.namespace}/${host.name}`;
      let userData: Buffer | undefined;
      if (command.type === 'deploy' && command.hasUserData) {
        if (!input.userData) {
          throw ApplicationFailure.create({
            type: FAILURE.ImageInvalid, nonRetryable: true,
            message: `deploy command ${command.id} for ${who} says hasUserData but names no user data Secret`,
          });
        }
        // The reader's errors name the Secret and key, never the content.
        userData = await deps.userData(input.userData.namespace, input.userData.name);
      }
      const result = deps.commands.set(host, bootId, command, userData);
      if (result === 'busy') {
        throw ApplicationFailure.create({
          type: FAILURE.AgentTimeout,
          message: `the agent of ${who} (boot ${bootId}) has not finished command ${deps.commands.pending(host, bootId)?.id} yet; ${command.id} waits`,
        });
      }
      deps.log.info('agent command queued', { host: who, bootId, commandId: command.id, type: command.type, result });
    },
  };
}
export type AgentActivities = ReturnType<typeof createAgentActivities>;

// The host workflow calls these by the contract in api/host-activities.ts.
type _Contract = Pick<HostActivities, 'sendAgentCommand'>;
const _fits = (a: AgentActivities): _Contract => a;
void _fits;
