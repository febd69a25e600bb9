/**
 * The virtual lab's inventory (lab/inventory.yaml and friends): what each
 * simulated or QEMU server looks like, which BMC fronts it, and which faults
 * to inject. Validated at load time (lab/inventory.ts).
 */

export type LabFault =
  /** BMC answers 401 to every request. */
  | 'bmc-401'
  /** BMC answers 409 (busy during POST) to the next N power/boot requests. */
  | 'bmc-409'
  /** BMC answers 503 to the next N requests. */
  | 'bmc-503'
  /** BMC never answers (request times out). */
  | 'bmc-timeout'
  /** BMC drops sessions: each session works for one request only. */
  | 'bmc-session-lost'
  /** Power actions are accepted but never take effect. */
  | 'power-stuck'
  /** The disk fails (I/O error) during image write. */
  | 'disk-fail-write'
  /** The disk fails during erase. */
  | 'disk-fail-erase'
  /** The node of a provisioned worker never becomes Ready. */
  | 'node-never-ready'
  /** The node goes NotReady after `afterSeconds`. */
  | 'node-notready-later'
  /** The first `count` TFTP packets between this server and the PXE services are lost (default 1). */
  | 'pxe-tftp-loss'
  /** The first `count` HTTP connections of this server's firmware are reset (default 1). */
  | 'pxe-http-loss';

export interface LabFaultSpec {
  fault: LabFault;
  /** For bmc-409 / bmc-503: how many requests fail before the BMC recovers (default: all); for pxe-*-loss: how many packets/connections are lost. */
  count?: number;
  afterSeconds?: number;
}

export interface LabDisk {
  name: string;
  sizeGiB: number;
  serialNumber: string;
  model?: string;
  rotational?: boolean;
}

export interface LabNic {
  name: string;
  mac: string;
}

export interface LabServer {
  name: string;
  vendor: string;
  model: string;
  cpus: number;
  memoryMiB: number;
  disks: LabDisk[];
  nics: LabNic[];
  bmc: {
    protocol: 'redfish' | 'ipmi';
    username: string;
    password: string;
  };
  /** 'sim' (default): a simulated server; 'qemu': a real QEMU VM. */
  kind?: 'sim' | 'qemu';
  /** Firmware settings of a simulated server (lab/sim/firmware.ts). */
  firmware?: {
    /** When no boot device booted, start the boot order again after this many seconds (default 30; 0 = halt). */
    bootRetrySeconds?: number;
  };
  faults?: LabFaultSpec[];
}

export interface LabInventory {
  /** Kubernetes namespace the printed BareMetalHost manifests go to. */
  namespace: string;
  servers: LabServer[];
}
