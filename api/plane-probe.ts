/** Input and result of the readiness probe the management plane runs through its own worker. */
export interface PlaneProbeInput {
  /** Echoed back by the activity, proving the round trip client → server → worker → activity. */
  nonce: string;
}
export interface PlaneProbeResult {
  nonce: string;
  /** Identity of the worker that ran the activity. */
  worker: string;
}
