/**
 * Which CustomResourceDefinitions Ironflow installs, and from where.
 *
 * Every kind Ironflow does not own is installed from upstream's published CRD
 * (api/crds/upstream/, see api/crds/README.md). The names listed here are the
 * exceptions: Ironflow still installs its own hand-written CRD from
 * api/crds/*.yaml for them, because the host workflow writes status fields
 * upstream's schema would prune (`status.hardware` in Ironflow's shape,
 * `status.erase`, `status.lastApproval`). Removing a name switches that kind
 * to upstream's CRD; nothing else changes.
 */
export const IRONFLOW_OWNED_CRDS: readonly string[] = ['baremetalhosts.metal3.io', 'hardwaredata.metal3.io'];

/** The path on the upstream webhooks server that converts every multi-version CRD. */
export const CONVERSION_WEBHOOK_PATH = '/convert';
