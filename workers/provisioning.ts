/**
 * The provisioning network's services in one process with the activities
 * that feed them: the durable session store (what each MAC boots, agent
 * sessions, MAC claims, discovery; `<stateDir>/sessions.json`), the HTTP
 * server (iPXE scripts, boot files, agent API), the TFTP server, and the
 * relay that hands agent reports to the host workflows from the store's
 * outbox. They share memory with the activities, so the worker that
 * registers those activities must run here too (`activityDeps`).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { HostRef } from '../api/host';
import { agentApi, type AgentApiLimits } from '../activities/agent/api';
import { temporalReportForwarder } from '../activities/agent/forward';
import { boundedWarnings, type HostWarnings, kubeEventWriter } from '../activities/agent/host-warnings';
import { imageSource, type ImageSource } from '../activities/agent/image-evidence';
import { type ReportRelay, startReportRelay, type ReportRelayOptions } from '../activities/agent/report-relay';
import { SessionStore, type SessionStoreOptions } from '../activities/agent/session-store';
import { kubeUserDataReader } from '../activities/k8s/user-data';
import { start as startHttpBoot } from '../activities/pxe/http-boot';
import { startTftpServer } from '../activities/pxe/tftp-server';

/** Name of the session store file under the provisioning state dir. */
export const SESSION_STORE_FILE = 'sessions.json';

export interface ProvisioningOptions {
  /** The session store file lives here (mode 0700 dir, 0600 file). */
  stateDir: string;
  /** Folder served as TFTP root and HTTP /files/ (agent kernel, initramfs, images). */
  filesDir: string;
  /** Address the services bind to (the provisioning network's; loopback for the simulated lab). */
  bindHost: string;
  httpPort: number;
  tftpPort: number;
  /** How machines reach the HTTP server (default http://<bindHost>:<httpPort>). */
  publicUrl?: string;
  /** Temporal: agent reports go to the host workflows as signals. */
  client?: Client;
  /** The management cluster: Warning Events on BareMetalHosts, user data Secrets. Without it: events only logged, no user data. */
  kc?: KubeConfig;
  /** Reads user data Secrets (default: from `kc`). */
  userData?: (namespace: string, secretName: string) => Promise<Buffer>;
  log: Logger;
  /** Seconds between the agent's command polls (default 5). */
  pollIntervalSeconds?: number;
  /** Tests and benchmarks tune these; production takes the defaults. */
  tuning?: {
    store?: Pick<SessionStoreOptions, 'discovery' | 'pastSessionsKept'>;
    api?: Partial<AgentApiLimits>;
    relay?: Pick<ReportRelayOptions, 'progressIntervalMs' | 'progressCap' | 'retryFirstMs' | 'retryMaxMs'>;
    /** Replace the Temporal signal (tests of the outbox, the agent lab). */
    forward?: ReportRelayOptions['forward'];
    /** Replace the Kubernetes Event write (tests record the Warning Events). */
    eventWriter?: (host: HostRef, reason: string, message: string) => Promise<void>;
    warningIntervalMs?: number;
  };
}

export interface ProvisioningServices {
  sessions: SessionStore;
  /** Warning Events (bounded) and the report relay, for whatever else in this process acts on sessions. */
  warnings: HostWarnings;
  relay: ReportRelay;
  /** The user data reader the agent API uses (the activities check Secrets with the same one). */
  userData: (namespace: string, secretName: string) => Promise<Buffer>;
  /** What createActivities needs from this process (spread into ActivityDeps). */
  activityDeps: { sessions: SessionStore; images: ImageSource };
  httpUrl: string;
  tftp: { host: string; port: number };
  filesDir: string;
  stop(): Promise<void>;
}

export async function startProvisioning(opts: ProvisioningOptions): Promise<ProvisioningServices> {
  mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
  mkdirSync(opts.filesDir, { recursive: true });
  const log = opts.log;
  const sessions = await SessionStore.open({
    file: join(opts.stateDir, SESSION_STORE_FILE),
    legacyRegistryFile: join(opts.stateDir, 'boot-registry.json'),
    onWriteError: (err) => log.error({ err: err.message }, 'session store write failed (retried with the next change)'),
    ...opts.tuning?.store,
  });
  const forward = opts.tuning?.forward ?? (opts.client ? temporalReportForwarder(opts.client) : undefined);
  if (!forward) throw new Error('startProvisioning needs a Temporal client to hand agent reports to the host workflows');
  const eventWriter = opts.tuning?.eventWriter ?? (opts.kc ? kubeEventWriter(opts.kc) : undefined);
  const warnings = boundedWarnings(eventWriter, log.child({ component: 'agent-api' }), { minIntervalMs: opts.tuning?.warningIntervalMs });
  const relay = startReportRelay({ sessions, forward, log: log.child({ component: 'agent-relay' }), ...opts.tuning?.relay });
  const readUserData = opts.userData ?? (opts.kc
    ? kubeUserDataReader(opts.kc)
    : async () => {
        throw new Error('this plane has no Kubernetes client to read user data Secrets');
      });
  const http = await startHttpBoot({
    host: opts.bindHost,
    port: opts.httpPort,
    filesDir: opts.filesDir,
    sessions,
    onBootInvalidated: (host, reason) => {
      warnings.warn(host, 'AgentBootInvalidated', reason);
      relay.kick();
    },
    log: log.child({ component: 'pxe-http' }),
    publicUrl: opts.publicUrl,
    // The agent API's routes carry their own /v1/agent prefix.
    plugins: [{ plugin: agentApi({ sessions, relay, warn: warnings.warn, userData: readUserData, pollIntervalSeconds: opts.pollIntervalSeconds, limits: opts.tuning?.api }) }],
  });
  const images = imageSource({ filesDir: opts.filesDir, httpPort: () => http.port });
  let tftp: Awaited<ReturnType<typeof startTftpServer>>;
  try {
    tftp = await startTftpServer({ host: opts.bindHost, port: opts.tftpPort, root: opts.filesDir, log: log.child({ component: 'pxe-tftp' }) });
  } catch (err) {
    await http.stop();
    await relay.stop();
    throw err;
  }
  // Reports accepted before a restart (or while Temporal was away) and not yet delivered.
  const pending = sessions.pendingDeliveries().length;
  if (pending) log.info({ pending }, 'agent reports waiting in the outbox; delivering');
  relay.kick();
  return {
    sessions,
    warnings,
    relay,
    userData: readUserData,
    activityDeps: { sessions, images },
    httpUrl: opts.publicUrl ?? http.url,
    tftp: { host: opts.bindHost, port: tftp.port },
    filesDir: opts.filesDir,
    stop: async () => {
      await tftp.stop();
      await http.stop();
      await relay.stop();
      await warnings.settled();
      await sessions.flush();
    },
  };
}
