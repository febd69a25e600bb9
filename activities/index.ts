import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { HostActivities } from '../api/host-activities';
import type { ImageSource } from './agent/image-evidence';
import { createSessionActivities } from './agent/session-activities';
import type { SessionStore } from './agent/session-store';
import { createBmcActivities } from './bmc/activities';
import { createDiagnosticActivities } from './diagnostics/probe';
import { type BmcCredentialsReader, kubeBmcCredentialsReader } from './k8s/bmc-credentials';
import { createHostObjectActivities } from './k8s/host-object';
import { kubeUserDataReader } from './k8s/user-data';
import { createPxeActivities } from './pxe/activities';

/**
 * What the activities need: the management cluster, and the provisioning
 * services' session store and image reader (which must live in the same
 * process as the HTTP server that serves the agent API and boot scripts:
 * workers/provisioning.ts `activityDeps`).
 */
export interface ActivityDeps {
  kc: KubeConfig;
  log: Logger;
  sessions: SessionStore;
  images: ImageSource;
  /** Defaults to reading Kubernetes Secrets. */
  credentials?: BmcCredentialsReader;
  /** PEM CAs trusted for BMC HTTPS beside the system ones. */
  bmcCaBundle?: string;
  /** Refuse BMC addresses outside loopback (development planes with the virtual lab). */
  bmcLoopbackOnly?: boolean;
}

/** All activities of the lifecycle worker, built with their dependencies. */
export function createActivities(deps: ActivityDeps) {
  const activities = {
    ...createDiagnosticActivities(),
    ...createBmcActivities({ credentials: deps.credentials ?? kubeBmcCredentialsReader(deps.kc), log: deps.log.child({ component: 'bmc' }), caBundle: deps.bmcCaBundle, loopbackOnly: deps.bmcLoopbackOnly }),
    ...createPxeActivities({ sessions: deps.sessions, log: deps.log.child({ component: 'pxe' }) }),
    ...createSessionActivities({ sessions: deps.sessions, images: deps.images, userData: kubeUserDataReader(deps.kc), log: deps.log.child({ component: 'agent' }) }),
    ...createHostObjectActivities({ kc: deps.kc }),
  };
  // The host workflow's contract, checked at compile time.
  const _contract: HostActivities = activities;
  void _contract;
  return activities;
}
export type Activities = ReturnType<typeof createActivities>;

/** Activities that need no outside dependency (the readiness probe), for tests of the worker itself. */
export const createProbeActivities = createDiagnosticActivities;
