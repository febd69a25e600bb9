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
  | 'node-notready-later';

export interface LabFaultSpec {
  fault: LabFault;
  /** For bmc-409 / bmc-503: how many requests fail before the BMC recovers (default: all). */
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
  faults?: LabFaultSpec[];
}

export interface LabInventory {
  /** Kubernetes namespace the printed BareMetalHost manifests go to. */
  namespace: string;
  servers: LabServer[];
}
