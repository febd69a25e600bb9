/**
 * BareMetalHost object (as the API server returns it) -> HostObservation, the
 * only shape of a host the workflow ever receives. Pure, so it is unit-tested
 * without a cluster. Only references leave here (Secret names): nothing the
 * object does not already show to anyone who can `kubectl get bmh`.
 */
import type { RootDeviceHints } from '../api/agent';
import { redactBmcAddress } from '../api/bmc-address-redaction';
import { HOST_ANNOTATIONS, HOST_STATES, type CleaningMode, type HostObservation, type HostSpec, type HostState, type HostStatus } from '../api/host';

/** The parts of a BareMetalHost the bridge reads. */
export interface BareMetalHostObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name?: string;
    namespace?: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    annotations?: Record<string, string>;
    finalizers?: string[];
    deletionTimestamp?: string | Date;
  };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

const CLEANING_MODES: readonly CleaningMode[] = ['metadata', 'disabled', 'full', 'secure'];
const CHECKSUM_TYPES = ['md5', 'sha256', 'sha512', 'auto'] as const;
const HINT_STRINGS = ['deviceName', 'hctl', 'model', 'vendor', 'serialNumber', 'wwn'] as const;

const obj = (v: unknown): Record<string, unknown> | undefined =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** Metal3 treats these annotations as set by their presence, whatever the value (even ""). */
function annotationSet(annotations: Record<string, string> | undefined, key: string): boolean {
  return annotations !== undefined && Object.prototype.hasOwnProperty.call(annotations, key);
}

function reduceSpec(spec: Record<string, unknown>): HostSpec {
  const bmc = obj(spec.bmc) ?? {};
  const out: HostSpec = {
    online: spec.online === true,
    bmc: { address: redactBmcAddress(str(bmc.address) ?? ''), credentialsName: str(bmc.credentialsName) ?? '' },
    automatedCleaningMode: CLEANING_MODES.includes(spec.automatedCleaningMode as CleaningMode)
      ? (spec.automatedCleaningMode as CleaningMode)
      : 'metadata',
  };
  if (bmc.disableCertificateVerification === true) out.bmc.disableCertificateVerification = true;
  const mac = str(spec.bootMACAddress);
  // One spelling for the workflow: Metal3 accepts '-' separators and any case.
  if (mac) out.bootMACAddress = mac.toLowerCase().replace(/-/g, ':');

  const image = obj(spec.image);
  const url = str(image?.url);
  if (image && url) {
    out.image = { url };
    const checksum = str(image.checksum);
    if (checksum) out.image.checksum = checksum;
    const ct = str(image.checksumType);
    if (ct && (CHECKSUM_TYPES as readonly string[]).includes(ct)) out.image.checksumType = ct as (typeof CHECKSUM_TYPES)[number];
    const format = str(image.format);
    if (format) out.image.format = format;
  }

  const userData = obj(spec.userData);
  const udName = str(userData?.name);
  if (udName) out.userData = str(userData?.namespace) ? { name: udName, namespace: str(userData?.namespace) } : { name: udName };

  const consumer = obj(spec.consumerRef);
  const consumerName = str(consumer?.name);
  if (consumer && consumerName) {
    const ref: NonNullable<HostSpec['consumerRef']> = { name: consumerName };
    for (const k of ['apiVersion', 'kind', 'namespace', 'uid'] as const) {
      const v = str(consumer[k]);
      if (v) ref[k] = v;
    }
    out.consumerRef = ref;
  }

  const hints = obj(spec.rootDeviceHints);
  if (hints) {
    const h: RootDeviceHints = {};
    for (const k of HINT_STRINGS) {
      const v = str(hints[k]);
      if (v) h[k] = v;
    }
    if (typeof hints.minSizeGigabytes === 'number') h.minSizeGigabytes = hints.minSizeGigabytes;
    if (typeof hints.rotational === 'boolean') h.rotational = hints.rotational;
    if (Object.keys(h).length > 0) out.rootDeviceHints = h;
  }
  if (spec.externallyProvisioned === true) out.externallyProvisioned = true;
  return out;
}

/** What the host workflow is told about one version of the object. */
export function observeHost(host: BareMetalHostObject): HostObservation {
  const annotations = host.metadata.annotations;
  return {
    generation: host.metadata.generation ?? 0,
    resourceVersion: host.metadata.resourceVersion ?? '',
    spec: reduceSpec(host.spec ?? {}),
    paused: annotationSet(annotations, HOST_ANNOTATIONS.paused),
    detached: annotationSet(annotations, HOST_ANNOTATIONS.detached),
    preciousData: annotationSet(annotations, HOST_ANNOTATIONS.preciousData),
    deleting: host.metadata.deletionTimestamp !== undefined && host.metadata.deletionTimestamp !== null,
  };
}

const STATUS_KEYS = ['operationalStatus', 'errorType', 'errorMessage', 'hardwareProfile', 'lastUpdated'] as const;

/**
 * The object's status as the durable record a new host workflow run adopts
 * (undefined when the host has never had one). Only known states are taken;
 * anything else starts the host over at registration, which touches nothing.
 */
export function recordedStatus(host: BareMetalHostObject): HostStatus | undefined {
  const status = obj(host.status);
  const provisioning = obj(status?.provisioning);
  const state = str(provisioning?.state);
  if (!status || !provisioning || !state || !(HOST_STATES as readonly string[]).includes(state)) return undefined;
  const out: HostStatus = {
    provisioning: { ...(provisioning as HostStatus['provisioning']), state: state as HostState },
    operationalStatus: 'OK',
    errorCount: typeof status.errorCount === 'number' && Number.isInteger(status.errorCount) ? status.errorCount : 0,
    poweredOn: status.poweredOn === true,
    lastUpdated: '',
  };
  for (const k of STATUS_KEYS) {
    const v = str(status[k]);
    if (v) (out as unknown as Record<string, unknown>)[k] = v;
  }
  if (obj(status.hardware)) out.hardware = status.hardware as HostStatus['hardware'];
  if (Array.isArray(status.erase)) out.erase = status.erase as HostStatus['erase'];
  if (obj(status.lastApproval)) out.lastApproval = status.lastApproval as HostStatus['lastApproval'];
  // Metal3 writes "" for no error.
  if (!out.errorType) delete out.errorType;
  if (!out.errorMessage) delete out.errorMessage;
  return out;
}
