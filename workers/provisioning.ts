/**
 * The provisioning network's services in one process with the activities
 * that feed them: the boot registry (what each MAC boots), the agent's token
 * and command stores, the HTTP server (iPXE scripts, boot files, agent API)
 * and the TFTP server. They share memory with the activities, so the worker
 * that registers those activities must run here too.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import type { Logger } from 'pino';
import { agentApi, lookupFromBootRegistry } from '../activities/agent/api';
import { AgentCommandStore } from '../activities/agent/commands';
import { temporalReportForwarder } from '../activities/agent/forward';
import { AgentTokenStore } from '../activities/agent/tokens';
import { BootRegistry } from '../activities/pxe/boot-registry';
import { start as startHttpBoot } from '../activities/pxe/http-boot';
import { startTftpServer } from '../activities/pxe/tftp-server';

export interface ProvisioningOptions {
  /** Registry file and boot files live here. */
  stateDir: string;
  /** Folder served as TFTP root and HTTP /files/ (agent kernel, initramfs, images). */
  filesDir: string;
  /** Address the services bind to (the provisioning network's; loopback for the simulated lab). */
  bindHost: string;
  httpPort: number;
  tftpPort: number;
  /** How machines reach the HTTP server (default http://<bindHost>:<httpPort>). */
  publicUrl?: string;
  client: Client;
  log: Logger;
}

export interface ProvisioningServices {
  registry: BootRegistry;
  tokens: AgentTokenStore;
  commands: AgentCommandStore;
  httpUrl: string;
  tftp: { host: string; port: number };
  filesDir: string;
  stop(): Promise<void>;
}

export async function startProvisioning(opts: ProvisioningOptions): Promise<ProvisioningServices> {
  mkdirSync(opts.stateDir, { recursive: true });
  mkdirSync(opts.filesDir, { recursive: true });
  const registry = await BootRegistry.open({ file: join(opts.stateDir, 'boot-registry.json') });
  const tokens = new AgentTokenStore();
  const commands = new AgentCommandStore();
  const http = await startHttpBoot({
    host: opts.bindHost,
    port: opts.httpPort,
    filesDir: opts.filesDir,
    registry,
    log: opts.log.child({ component: 'pxe-http' }),
    publicUrl: opts.publicUrl,
    // The agent API's routes carry their own /v1/agent prefix.
    plugins: [{ plugin: agentApi({ lookup: lookupFromBootRegistry(registry), tokens, commands, onReport: temporalReportForwarder(opts.client) }) }],
  });
  let tftp: Awaited<ReturnType<typeof startTftpServer>>;
  try {
    tftp = await startTftpServer({ host: opts.bindHost, port: opts.tftpPort, root: opts.filesDir, log: opts.log.child({ component: 'pxe-tftp' }) });
  } catch (err) {
    await http.stop();
    throw err;
  }
  return {
    registry,
    tokens,
    commands,
    httpUrl: opts.publicUrl ?? http.url,
    tftp: { host: opts.bindHost, port: tftp.port },
    filesDir: opts.filesDir,
    stop: async () => {
      await tftp.stop();
      await http.stop();
    },
  };
}
