/**
 * The activities the host workflow calls, by name and signature. The
 * implementations live in activities/{bmc,pxe,agent,k8s}; the worker checks
 * at compile time that what it registers satisfies this interface, and
 * workflow tests stub exactly this.
 */
import type { AgentCommand } from './agent';
import type { BootTarget, PowerState } from './bmc';
import type { HostRef, HostSpec, HostStatus } from './host';
import type { BootMode } from './pxe';

export interface BmcTarget {
  host: HostRef;
  bmc: HostSpec['bmc'];
}

export interface HostActivities {
  /** Registration: credentials resolve and the BMC answers. */
  bmcCheckAccess(input: BmcTarget): Promise<{ poweredOn: boolean; manufacturer?: string; model?: string }>;
  /** Acts, then polls until the BMC shows `state` (heartbeats); no-op if already there. */
  bmcSetPower(input: BmcTarget & { state: PowerState }): Promise<{ poweredOn: boolean; changed: boolean }>;
  /** Hard reset (used to reboot into a freshly prepared PXE boot). */
  bmcReboot(input: BmcTarget): Promise<void>;
  bmcSetNextBoot(input: BmcTarget & { target: BootTarget; persistent: boolean }): Promise<unknown>;

  /** Registers what `mac` boots next; a new bootId invalidates the previous boot's agent token. */
  prepareBoot(input: { host: HostRef; mac: string; mode: BootMode; renew?: boolean }): Promise<{ bootId: string }>;
  clearBoot(input: { host: HostRef; mac: string }): Promise<unknown>;

  /** Queues a command for the agent of this boot; the result arrives as the agentReport signal. */
  sendAgentCommand(input: { host: HostRef; bootId: string; command: AgentCommand; userData?: { namespace: string; name: string } }): Promise<void>;

  /** Writes status to the BareMetalHost status subresource (idempotent). */
  writeHostStatus(input: { host: HostRef; status: HostStatus }): Promise<void>;
  /** Removes Ironflow's finalizer: the hardware is safe (powered off, erased or detached). */
  releaseHost(input: { host: HostRef }): Promise<void>;
}
