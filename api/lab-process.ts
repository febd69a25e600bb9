/**
 * What the lab process (lab/main.ts) tells the process that started it
 * (`npm start`'s launcher, scripts/start.ts) over its IPC channel once its
 * servers and BMCs are up. The plane never reads it: the lab is hardware
 * beside the plane, not part of it.
 */
export const LAB_READY = 'ironflow-lab-ready';

export interface LabReadyMessage {
  kind: typeof LAB_READY;
  /** BareMetalHost + Secret manifests of every lab server, ready for kubectl apply. */
  manifestsFile: string;
  servers: { redfish: number; ipmi: number; qemu: number };
  /**
   * Set when the lab has QEMU machines: the network they PXE-boot on, where
   * the plane must serve DHCP (`--dhcp-interface`, `--dhcp-netns`,
   * `--dhcp-range`, `--dhcp-boot-url`).
   */
  provisioningNetwork?: { netns: string; interface: string; range: { start: string; end: string }; bootUrl: string };
}
