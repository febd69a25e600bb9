/**
 * A simulated server: it reacts to its BMC's power and boot changes the way
 * hardware does. Powered on with next boot PXE it runs the network boot path
 * for real against Ironflow's PXE services (the chain script and its per-MAC
 * script over HTTP, the kernel over TFTP, the initramfs over HTTP), then
 * runs THE agent script (agent/ironflow-agent.sh) against its synthesized
 * /proc, /sys and disk image files. Powered off, the agent dies mid-step, as
 * it would on real hardware.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as tftp from 'node-tftp';
import { AGENT_CMDLINE, PXE_PATHS } from '../../api/pxe';
import type { LabServer } from '../../api/lab';
import { runAgent, type AgentExit } from './run-agent';
import { createSysroot, type Sysroot } from './sysroot';
import { bootDisk, type LabOs } from './os/boot-disk';

export interface PxeEndpoints {
  /** Base URL of Ironflow's provisioning HTTP server. */
  httpUrl: string;
  tftp: { host: string; port: number };
}

export type BootEvent =
  | { kind: 'netboot'; script: 'agent' | 'disk' | 'none' | 'unknown-mac'; kernelBytes?: number; initrdBytes?: number; ms: number }
  | { kind: 'agent-exit'; exit: AgentExit['outcome']; code?: number }
  | { kind: 'disk-boot'; rootDevice?: string }
  | { kind: 'powered-off' };

export interface SimServerOptions {
  server: LabServer;
  workDir: string;
  pxe: PxeEndpoints;
  /** The server powers itself off (agent poweroff): tell the BMC. */
  powerOffViaBmc: () => Promise<void>;
  onEvent?: (name: string, e: BootEvent) => void;
  log?: (line: string) => void;
}

/** iPXE's ${mac:hexhyp}: 52-54-00-12-34-56 */
const hexhyp = (mac: string) => mac.toLowerCase().replace(/:/g, '-');

function tftpGet(pxe: PxeEndpoints['tftp'], remote: string, local: string): Promise<number> {
  const client = tftp.createClient({ host: pxe.host, port: pxe.port, blockSize: 1432, retries: 3, timeout: 250 });
  // node-tftp's get stream is not a complete stream.Readable (pipeline reports a
  // premature close): collect it by its events instead.
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    client
      .createGetStream(remote)
      .on('data', (c: Buffer) => chunks.push(c))
      .on('error', reject)
      .on('end', () => {
        const body = Buffer.concat(chunks);
        writeFile(local, body).then(() => resolve(body.length), reject);
      });
  });
}

async function httpGetToFile(url: string, local: string): Promise<number> {
  const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  if (!res.ok || !res.body) throw new Error(`GET ${url}: HTTP ${res.status}`);
  await pipeline(res.body as unknown as NodeJS.ReadableStream, createWriteStream(local));
  return Number(res.headers.get('content-length') ?? 0);
}

export class SimServer {
  private powered = false;
  private agent: AbortController | undefined;
  private sysroot: Sysroot | undefined;
  private bootSeq = 0;
  private labOs: LabOs | undefined;

  constructor(private readonly o: SimServerOptions) {}

  get name(): string {
    return this.o.server.name;
  }

  /** As the server itself knows it (follows the BMC's notifications). */
  get poweredOn(): boolean {
    return this.powered;
  }

  /** What the installed image runs after a disk boot (lab/sim/os), until power off. */
  get os(): LabOs | undefined {
    return this.labOs;
  }

  get disks(): Record<string, string> {
    return this.sysroot?.diskPaths ?? {};
  }

  /**
   * Makes the disks (sparse files) before the first boot, so they exist to be
   * inspected and checked; disks of an earlier run are kept, as a real
   * server keeps its disks across a restart of the plane.
   */
  async init(): Promise<void> {
    this.sysroot = await createSysroot(this.o.server, { dir: join(this.o.workDir, 'sysroot'), apiUrl: this.o.pxe.httpUrl, bootId: 'none', keepDisks: true });
  }

  /** The BMC reports power and next-boot device (Redfish words: Pxe, Hdd; IPMI: pxe, disk/default). */
  onBmcState(power: 'on' | 'off', bootDevice: string): void {
    if (power === 'on' && !this.powered) {
      this.powered = true;
      const seq = ++this.bootSeq;
      void this.boot(/pxe/i.test(bootDevice) ? 'pxe' : 'disk', seq).catch((err: unknown) => this.o.log?.(`${this.name}: boot failed: ${(err as Error).message}`));
    } else if (power === 'off' && this.powered) {
      this.powered = false;
      this.bootSeq++;
      this.agent?.abort();
      this.agent = undefined;
      void this.labOs?.stop();
      this.labOs = undefined;
      this.o.onEvent?.(this.name, { kind: 'powered-off' });
    }
  }

  private async boot(device: 'pxe' | 'disk', seq: number): Promise<void> {
    if (device === 'disk') {
      this.o.onEvent?.(this.name, { kind: 'disk-boot', rootDevice: Object.keys(this.disks)[0] });
      if (seq === this.bootSeq) this.labOs = bootDisk({ server: this.o.server, workDir: this.o.workDir, disks: this.disks, log: this.o.log });
      return;
    }
    const t0 = Date.now();
    const mac = this.o.server.nics[0]!.mac;
    // What iPXE does after DHCP: the chain script, then the per-MAC script it names.
    const chain = await fetch(`${this.o.pxe.httpUrl}${PXE_PATHS.chainScript}`).then((r) => r.text());
    const next = /chain\s+(?:--\S+\s+)*(\S+)/.exec(chain)?.[1]?.replace('${mac:hexhyp}', hexhyp(mac));
    if (!next) throw new Error(`chain script has no chain line: ${chain.slice(0, 200)}`);
    const res = await fetch(next);
    if (res.status === 404) {
      this.o.onEvent?.(this.name, { kind: 'netboot', script: 'unknown-mac', ms: Date.now() - t0 });
      return;
    }
    const script = await res.text();
    const kernelLine = /^kernel\s+(\S+)\s*(.*)$/m.exec(script);
    const initrdLine = /^initrd\s+(\S+)/m.exec(script);
    if (!kernelLine || !initrdLine) {
      this.o.onEvent?.(this.name, { kind: 'netboot', script: /sanboot/.test(script) ? 'disk' : 'none', ms: Date.now() - t0 });
      return;
    }
    const bootDir = join(this.o.workDir, 'boot');
    await rm(bootDir, { recursive: true, force: true });
    await mkdir(bootDir, { recursive: true });
    // The kernel over TFTP (the PXE ROM's path), the initramfs over HTTP (iPXE's), both for real.
    const kernelName = new URL(kernelLine[1]!).pathname.replace(/^\/files\//, '');
    const kernelBytes = await tftpGet(this.o.pxe.tftp, kernelName, join(bootDir, 'kernel'));
    const initrdBytes = await httpGetToFile(initrdLine[1]!, join(bootDir, 'initrd'));
    const args = kernelLine[2] ?? '';
    const bootId = new RegExp(`${AGENT_CMDLINE.bootId.replace('.', '\\.')}=(\\S+)`).exec(args)?.[1] ?? 'unknown';
    const apiUrl = new RegExp(`${AGENT_CMDLINE.api.replace('.', '\\.')}=(\\S+)`).exec(args)?.[1] ?? this.o.pxe.httpUrl;
    this.o.onEvent?.(this.name, { kind: 'netboot', script: 'agent', kernelBytes, initrdBytes, ms: Date.now() - t0 });
    if (seq !== this.bootSeq) return; // powered off while booting
    this.sysroot = await createSysroot(this.o.server, { dir: join(this.o.workDir, 'sysroot'), apiUrl, bootId, keepDisks: true });
    const ac = new AbortController();
    this.agent = ac;
    const exit = await runAgent({ sysroot: this.sysroot.dir, signal: ac.signal, timeoutMs: 30 * 60_000, maxAttempts: 10, onLog: (l) => this.o.log?.(`${this.name} agent: ${l}`) });
    if (this.agent === ac) this.agent = undefined;
    this.o.onEvent?.(this.name, { kind: 'agent-exit', exit: exit.outcome, code: exit.outcome === 'exited' ? exit.code : undefined });
    if (exit.outcome === 'poweroff' && seq === this.bootSeq) await this.o.powerOffViaBmc();
  }

  async stop(): Promise<void> {
    this.bootSeq++;
    this.agent?.abort();
    const os = this.labOs;
    this.labOs = undefined;
    await os?.stop();
  }
}
