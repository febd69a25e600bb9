import type { BmcDriver } from '../../api/bmc';

/**
 * BmcDriver plus what Ironflow's own drivers add. Optional members are
 * capabilities a driver may lack; callers check before using them.
 */
export interface IronflowBmcDriver extends BmcDriver {
  /** Ask the OS to shut down (Redfish GracefulShutdown, IPMI `power soft`); callers verify and fall back to a hard off. */
  softPowerOff?(): Promise<void>;
}
