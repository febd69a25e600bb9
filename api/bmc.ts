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

/** Who the server says it is: what registration records, read in one or two requests. */
export interface BmcIdentity {
  manufacturer?: string;
  model?: string;
  serialNumber?: string;
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
  /**
   * Asks the operating system to shut down (ACPI power button: Redfish
   * GracefulShutdown, IPMI `chassis power soft`). Returns once the BMC
   * accepted it; the OS may take its time or ignore it, so callers poll and
   * fall back to a hard off. Throws BmcUnsupported where the BMC has no such action.
   */
  softPowerOff(): Promise<void>;
  /** Hard reset of a powered-on server. */
  reset(): Promise<void>;
}

export interface BootDevice {
  /** once = next boot only (Redfish BootSourceOverrideEnabled=Once, IPMI without persistent). */
  setNextBoot(target: BootTarget, opts?: { persistent?: boolean }): Promise<void>;
  getNextBoot(): Promise<{ target: BootTarget | 'none' | 'other'; persistent: boolean }>;
}

export interface Identity {
  /** Make, model and serial only: no walk of NICs, disks or processors (registration must stay quick on big servers). */
  getIdentity(): Promise<BmcIdentity>;
}

export interface Inventory {
  /** The whole out-of-band inventory: many requests on a large Redfish server. */
  getInventory(): Promise<BmcInventory>;
}

export interface VirtualMedia {
  insertMedia(imageUrl: string): Promise<void>;
  ejectMedia(): Promise<void>;
}

/** A connected driver for one BMC. close() ends any session it opened. */
export interface BmcDriver extends PowerControl, BootDevice, Identity, Inventory {
  readonly endpoint: BmcEndpoint;
  readonly virtualMedia?: VirtualMedia;
  close(): Promise<void>;
}
