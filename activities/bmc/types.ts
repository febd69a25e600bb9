import type { BmcDriver } from '../../api/bmc';

/** BmcDriver plus what Ironflow's own drivers declare about themselves. */
export interface IronflowBmcDriver extends BmcDriver {
  /**
   * False where the BMC drops the persistent bit of boot flags (ipmi_sim and
   * many IPMI BMCs), so read-backs cannot confirm persistence.
   */
  readonly reportsBootPersistence: boolean;
}
