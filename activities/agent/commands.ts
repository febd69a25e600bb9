/**
 * The pending agent command per host: set by the sendAgentCommand activity,
 * fetched by the agent's polls, finished by the agent's final report. A
 * command stays pending until then, so an agent that crashed after fetching
 * it sees it again; its id makes setting and running it idempotent.
 *
 * The state is JSON-plain (see snapshot()) except user data, which is
 * held in memory only, beside the deploy command it belongs to, and is never
 * serialized.
 */
import type { AgentCommand } from '../../api/agent';
import type { HostRef } from '../../api/host';

interface HostCommands {
  bootId: string;
  pending?: AgentCommand;
  /** Ids of commands that were finished (newest last, bounded). */
  finished: string[];
}
export type CommandStoreSnapshot = Record<string, HostCommands>;

export type SetResult = 'accepted' | 'duplicate' | 'busy';

const FINISHED_KEPT = 32;
const key = (h: HostRef) => `${h.namespace}/${h.name}`;

export class AgentCommandStore {
  private state: CommandStoreSnapshot = {};
  private readonly userData = new Map<string, Buffer>();

  /**
   * Queues `command` for the agent of boot `bootId`. Same id again -> 'duplicate'
   * (no change); another command while one is pending -> 'busy'. A new boot
   * drops whatever the previous boot's agent had not finished.
   */
  set(host: HostRef, bootId: string, command: AgentCommand, userData?: Buffer): SetResult {
    const k = key(host);
    let h = this.state[k];
    if (!h || h.bootId !== bootId) {
      h = { bootId, finished: [] };
      this.state[k] = h;
      this.userData.delete(k);
    }
    if (h.pending?.id === command.id || h.finished.includes(command.id)) return 'duplicate';
    if (h.pending) return 'busy';
    h.pending = command;
    if (command.type === 'deploy' && userData) this.userData.set(k, userData);
    return 'accepted';
  }

  /** What the agent of `bootId` should do now ({type:'none'} when nothing). */
  pending(host: HostRef, bootId: string): AgentCommand | undefined {
    const h = this.state[key(host)];
    return h && h.bootId === bootId ? h.pending : undefined;
  }

  /** Was `commandId` of this boot finished already (a retried final report)? */
  isFinished(host: HostRef, bootId: string, commandId: string): boolean {
    const h = this.state[key(host)];
    return !!h && h.bootId === bootId && h.finished.includes(commandId);
  }

  /** The final report for the pending command arrived: clear it and its user data. */
  finish(host: HostRef, bootId: string, commandId: string): void {
    const k = key(host);
    const h = this.state[k];
    if (!h || h.bootId !== bootId || h.pending?.id !== commandId) return;
    h.pending = undefined;
    h.finished = [...h.finished, commandId].slice(-FINISHED_KEPT);
    this.userData.delete(k);
  }

  /** User data of the pending deploy command, only while it is pending. */
  pendingUserData(host: HostRef, bootId: string): Buffer | undefined {
    const cmd = this.pending(host, bootId);
    return cmd?.type === 'deploy' ? this.userData.get(key(host)) : undefined;
  }

  snapshot(): CommandStoreSnapshot {
    return JSON.parse(JSON.stringify(this.state)) as CommandStoreSnapshot;
  }
}
