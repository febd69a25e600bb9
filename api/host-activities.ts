/**
 * The activities the host workflow calls, by name and signature. The
 * implementations live in activities/{bmc,pxe,agent,k8s}; the worker checks
 * at compile time that what it registers satisfies this interface, and
 * workflow tests stub exactly this.
 */
import type { AgentCommand, AgentSessionView, ExpectedDisk } from './agent';
import type { BmcIdentity, BootTarget, PowerState } from './bmc';
import type { HostEvent, HostRef, HostSpec, HostStatus } from './host';
import type { BootMode } from './pxe';

export interface BmcTarget {
  host: HostRef;
  bmc: HostSpec['bmc'];
}

/** What bmcSetPower did. */
export interface BmcPowerResult {
  poweredOn: boolean;
  /** False when the server was already in the requested state (nothing was sent). */
  changed: boolean;
  /** Which action took effect: none (already there), the soft off, or the hard power action. */
  method: 'none' | 'soft' | 'hard';
  /** Set when a soft off was asked for and the hard one did it: why (no such action, or the OS did not shut down in time). */
  softOffFallback?: string;
}

export interface BmcSetPowerInput extends BmcTarget {
  state: PowerState;
  /**
   * Off only: ask the OS to shut down first (Redfish GracefulShutdown, IPMI
   * `chassis power soft`) and force it off only if it still reads on after
   * `softTimeoutSeconds`, as Ironic does for a soft power off. Use it for
   * `online: false` on a provisioned host.
   */
  soft?: boolean;
  /**
   * How long the soft off may take, 1..600 s (default 60). The activity's
   * startToCloseTimeout must exceed this plus the hard off's verification
   * (60 s) and a margin.
   */
  softTimeoutSeconds?: number;
}

export interface HostActivities extends HostAgentSessionActivities {
  /** Registration: credentials resolve and the BMC answers; reads power state and identity only (no inventory walk). */
  bmcCheckAccess(input: BmcTarget): Promise<{ poweredOn: boolean } & BmcIdentity>;
  /** Acts, then polls until the BMC shows `state` (heartbeats); no-op if already there. */
  bmcSetPower(input: BmcSetPowerInput): Promise<BmcPowerResult>;
  /** Hard reset (used to reboot into a freshly prepared PXE boot). */
  bmcReboot(input: BmcTarget): Promise<void>;
  bmcSetNextBoot(input: BmcTarget & { target: BootTarget; persistent: boolean }): Promise<unknown>;

  /**
   * Registers what `mac` boots next (modes 'disk' and 'none'; 'agent' only for
   * sendAgentCommand below). A new boot ends the host's current agent session
   * (its token stops working). Claims the MAC for the host if nobody holds it.
   */
  prepareBoot(input: { host: HostRef; mac: string; mode: BootMode; renew?: boolean }): Promise<{ bootId: string }>;
  /** Forgets what `mac` boots next (the host keeps its claim on the MAC). */
  clearBoot(input: { host: HostRef; mac: string }): Promise<unknown>;

  /**
   * Transitional (until the workflow calls startAgentSession): starts the
   * agent session of a boot prepared with prepareBoot(mode 'agent'), exactly
   * as startAgentSession does but on that bootId. User data only from the
   * host's own namespace.
   */
  sendAgentCommand(input: { host: HostRef; bootId: string; command: AgentCommand; userData?: { namespace: string; name: string }; inspectedDisks?: ExpectedDisk[] }): Promise<void>;

  /** Writes status to the BareMetalHost status subresource (idempotent), and the events of this step. */
  writeHostStatus(input: { host: HostRef; status: HostStatus; events?: HostEvent[] }): Promise<void>;
  /** Removes Ironflow's finalizer: the hardware is safe (powered off, erased or detached). */
  releaseHost(input: { host: HostRef }): Promise<void>;
}

/**
 * Agent sessions (replacing prepareBoot(mode 'agent') + sendAgentCommand),
 * served by activities/agent/session-activities.ts over the plane's durable
 * session store (activities/agent/session-store.ts).
 */
export interface HostAgentSessionActivities {
  /**
   * Starts one agent session: a fresh boot of `mac` for exactly `command`,
   * persisted in the plane's session store. The token is minted when the
   * per-boot iPXE script is served (once) and rides on its kernel command
   * line. Idempotent by command.id (a retry returns the same bootId, even
   * after the session finished). The plane sets `verify` (and `disks` for
   * erase) itself; values passed in are replaced. Refuses user data from
   * another namespace and rootDeviceHints out of bounds (non-retryable).
   * `inspectedDisks` is what reports are checked against (disk serial and size).
   * The MAC is claimed for the host if nobody holds it.
   */
  startAgentSession(input: {
    host: HostRef;
    mac: string;
    command: AgentCommand;
    /**
     * Secret with the user data, in the host's own namespace. `namespace` is
     * accepted only to be refused when it names another namespace (as
     * spec.userData.namespace may): Secrets are never read across namespaces.
     */
    userData?: { name: string; namespace?: string };
    /** Required for erase (the disks erased, by serial, and checked); optional for deploy (the root device is checked against it). */
    inspectedDisks?: ExpectedDisk[];
  }): Promise<{ bootId: string }>;
  /**
   * What the plane's durable session store knows of a command, or without
   * commandId of the host's latest session: its current one, else the last
   * that ended (undefined = none).
   */
  getAgentSession(input: { host: HostRef; commandId?: string }): Promise<AgentSessionView | undefined>;
  /** Claims `mac` for this host for the object's lifetime (refused when another host, or another namespace, holds it). */
  claimBootMac(input: { host: HostRef; mac: string }): Promise<void>;
  /** Every exit path: drops the host's boot entries, sessions (tokens) and MAC claims. Idempotent. */
  forgetHostBoot(input: { host: HostRef }): Promise<void>;
}
