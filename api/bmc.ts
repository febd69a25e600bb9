/**
 * What Ironflow asks of a BMC, independent of protocol. One interface per
 * capability; a driver says which it supports. Every method is safe to call
 * again until it has taken effect (power on when on is a no-op).
 */

export type BmcProtocol = 'redfish' | 'ipmi';

/** A parsed `spec.bmc.address` (Metal3 schemes). */
export interface BmcEndpoint {
  protocol: BmcProtocol;
  /** Vendor flavour of Redfish (idrac-redfish://, ilo5-redfish://) or 'generic'. */
  vendor: 'generic' | 'idrac' | 'ilo5';
  /** https or http for Redfish; unused for IPMI. */
  scheme: 'https' | 'http';
  host: string;
  port: number;
  /** Redfish system path (e.g. /redfish/v1/Systems/1); empty = discover the only system. */
  systemPath: string;
  /** The address as the operator wrote it, for error messages. */
  address: string;
}

export type PowerState = 'on' | 'off';
export type BootTarget = 'pxe' | 'disk';

/** BMC credentials. Only activities hold these; they never enter workflow history. */
export interface BmcCredentials {
  username: string;
  password: string;
}

/** Out-of-band hardware inventory, as far as the BMC tells it. */
export interface BmcInventory {
  manufacturer?: string;
  model?: string;
  serialNumber?: string;
  biosVersion?: string;
  cpu?: { count: number; model?: string; cores?: number };
  memoryMiB?: number;
  nics: Array<{ name?: string; mac: string; speedMbps?: number }>;
  disks: Array<{ name?: string; sizeBytes?: number; serialNumber?: string; model?: string; rotational?: boolean }>;
}

export interface PowerControl {
  getPowerState(): Promise<PowerState>;
  /** Returns once the BMC accepted the request; callers verify with getPowerState. */
  setPowerState(state: PowerState): Promise<void>;
  /** Hard reset of a powered-on server. */
  reset(): Promise<void>;
}

export interface BootDevice {
  /** once = next boot only (Redfish BootSourceOverrideEnabled=Once, IPMI without persistent). */
  setNextBoot(target: BootTarget, opts?: { persistent?: boolean }): Promise<void>;
  getNextBoot(): Promise<{ target: BootTarget | 'none' | 'other'; persistent: boolean }>;
}

export interface Inventory {
  getInventory(): Promise<BmcInventory>;
}

export interface VirtualMedia {
  insertMedia(imageUrl: string): Promise<void>;
  ejectMedia(): Promise<void>;
}

/** A connected driver for one BMC. close() ends any session it opened. */
export interface BmcDriver extends PowerControl, BootDevice, Inventory {
  readonly endpoint: BmcEndpoint;
  readonly virtualMedia?: VirtualMedia;
  close(): Promise<void>;
}
