/**
 * A simulated server: it reacts to its BMC's power and boot changes the way
 * hardware does. Powered on with next boot PXE it runs the network boot path
 * for real against Ironflow's PXE services (the chain script and its per-MAC
 * script over HTTP, the kernel over TFTP, the initramfs over HTTP), then
 * runs THE agent script (agent/ironflow-agent.sh) against its synthesized
 * /proc, /sys and disk image files. Powered off, the agent dies mid-step, as
 * it would on real hardware.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AGENT_CMDLINE } from '../../api/pxe';
import type { LabServer } from '../../api/lab';
import { runAgent, type AgentExit } from './run-agent';
import { createSysroot, type Sysroot } from './sysroot';
import { bootDisk, type LabOs } from './os/boot-disk';
import { DEFAULT_FIRMWARE, netbootOnce, type FirmwareTimings, type PxeEndpoints } from './firmware';

export type { PxeEndpoints } from './firmware';

export type BootEvent =
  | { kind: 'netboot'; script: 'agent' | 'disk' | 'none' | 'unknown-mac'; kernelBytes?: number; initrdBytes?: number; ms: number }
  /** A network boot attempt that failed (a fetch timed out or was refused, the script exited): the firmware goes on to the next boot device. */
  | { kind: 'netboot-failed'; reason: string; ms: number }
  /** Every boot device failed; the firmware starts the boot order again after `retryInMs` (none: it halts). */
  | { kind: 'no-boot-device'; retryInMs?: number; attempt: number }
  | { kind: 'agent-exit'; exit: AgentExit['outcome']; code?: number }
  /** The agent's ramdisk ended without powering off: the kernel panics and, with panic=N, reboots after N s. */
  | { kind: 'kernel-panic'; rebootInMs?: number }
  | { kind: 'disk-boot'; rootDevice?: string }
  | { kind: 'powered-off' }
  /** The server's BMC process died (the lab restarts it in `restartInMs`; lab/bmc/child.ts) and when it answers again. */
  | { kind: 'bmc-down'; reason: string; restartInMs: number }
  | { kind: 'bmc-up'; msSinceRestart: number }
  /** A defect in the lab itself (not a simulated fault). */
  | { kind: 'boot-failed'; reason: string };

export interface SimServerOptions {
  server: LabServer;
  workDir: string;
  pxe: PxeEndpoints;
  /** The server powers itself off (agent poweroff): tell the BMC. */
  powerOffViaBmc: () => Promise<void>;
  onEvent?: (name: string, e: BootEvent) => void;
  log?: (line: string) => void;
  /** Firmware retry timings (default DEFAULT_FIRMWARE). */
  firmware?: Partial<FirmwareTimings>;
  /** This server's packets take another path (a lossy one, lab/sim/pxe-fault-path.ts). */
  via?: { httpOrigin?: string; tftp?: { host: string; port: number } };
}

type BootDevice = 'pxe' | 'disk';

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
    this.bootDevice = /pxe/i.test(bootDevice) ? 'pxe' : 'disk';
    if (power === 'on' && !this.powered) {
      this.powered = true;
      this.powerOn(++this.bootSeq);
    } else if (power === 'off' && this.powered) {
      this.powered = false;
      this.halt();
      this.o.onEvent?.(this.name, { kind: 'powered-off' });
    }
  }

  private bootDevice: BootDevice = 'disk';
  /** Aborted at power off: ends waits and fetches of the current boot. */
  private powerSignal = new AbortController();

  private get timings(): FirmwareTimings {
    return { ...DEFAULT_FIRMWARE, ...this.o.firmware };
  }

  private halt(): void {
    this.bootSeq++;
    this.powerSignal.abort();
    this.powerSignal = new AbortController();
    this.agent?.abort();
    this.agent = undefined;
    void this.labOs?.stop();
    this.labOs = undefined;
  }

  private powerOn(seq: number): void {
    void this.bootOrder(seq, this.powerSignal.signal).catch((err: unknown) => {
      this.o.log?.(`${this.name}: boot failed: ${(err as Error).message}`);
      this.o.onEvent?.(this.name, { kind: 'boot-failed', reason: (err as Error).message });
    });
  }

  /**
   * What firmware does at power on: the BMC's boot device first; a failed
   * network boot falls through to the disk; when nothing booted, the boot
   * order starts again after the boot retry delay, until power off. A disk
   * boot that finds nothing halts there: nothing on a disk changes while
   * the server is on.
   */
  private async bootOrder(seq: number, signal: AbortSignal): Promise<void> {
    const order: BootDevice[] = this.bootDevice === 'pxe' ? ['pxe', 'disk'] : ['disk'];
    for (let attempt = 1; seq === this.bootSeq; attempt++) {
      for (const device of order) {
        if (seq !== this.bootSeq) return;
        const booted = device === 'pxe' ? await this.netboot(seq, signal) : await this.diskBoot(seq, order.length > 1);
        if (booted) return;
      }
      if (seq !== this.bootSeq) return;
      const delay = this.timings.bootRetryDelayMs;
      if (order[0] === 'disk' || delay <= 0) {
        this.o.onEvent?.(this.name, { kind: 'no-boot-device', attempt });
        return;
      }
      this.o.onEvent?.(this.name, { kind: 'no-boot-device', retryInMs: delay, attempt });
      await sleep(delay, undefined, { signal }).catch(() => undefined);
    }
  }

  /** Disk boot; `fallthrough`: a disk with nothing bootable lets the boot order go on. */
  private async diskBoot(seq: number, fallthrough: boolean): Promise<boolean> {
    this.o.onEvent?.(this.name, { kind: 'disk-boot', rootDevice: Object.keys(this.disks)[0] });
    if (seq !== this.bootSeq) return true;
    const os = bootDisk({ server: this.o.server, workDir: this.o.workDir, disks: this.disks, log: this.o.log });
    this.labOs = os;
    if (!fallthrough) return true;
    const state = await os.state;
    if (state.kind === 'running') return true;
    if (this.labOs === os) this.labOs = undefined;
    await os.stop();
    return false;
  }

  /** One network boot; true when it reached an OS (the agent ran, or the script booted the disk). */
  private async netboot(seq: number, signal: AbortSignal): Promise<boolean> {
    const bootDir = join(this.o.workDir, 'boot');
    await rm(bootDir, { recursive: true, force: true });
    await mkdir(bootDir, { recursive: true });
    const a = await netbootOnce({ mac: this.o.server.nics[0]!.mac, pxe: this.o.pxe, via: this.o.via, bootDir, timings: this.timings, signal, log: (l) => this.o.log?.(`${this.name} ${l}`) });
    if (seq !== this.bootSeq) return true;
    if (a.unknownMac) {
      this.o.onEvent?.(this.name, { kind: 'netboot', script: 'unknown-mac', ms: a.ms });
      return false;
    }
    if (a.outcome.kind === 'sanboot') {
      this.o.onEvent?.(this.name, { kind: 'netboot', script: 'disk', ms: a.ms });
      return this.diskBoot(seq, false);
    }
    if (a.outcome.kind === 'exit') {
      if (a.mode === 'none' || a.mode === 'disk') this.o.onEvent?.(this.name, { kind: 'netboot', script: a.mode, ms: a.ms });
      else this.o.onEvent?.(this.name, { kind: 'netboot-failed', reason: a.outcome.reason, ms: a.ms });
      return false;
    }
    const args = a.kernelArgs ?? '';
    const arg = (key: string) => new RegExp(`(?:^|\\s)${key.replace(/\./g, '\\.')}=(\\S+)`).exec(args)?.[1];
    const bootId = arg(AGENT_CMDLINE.bootId) ?? 'unknown';
    const apiUrl = arg(AGENT_CMDLINE.api) ?? this.o.pxe.httpUrl;
    this.o.onEvent?.(this.name, { kind: 'netboot', script: 'agent', kernelBytes: a.kernelBytes, initrdBytes: a.initrdBytes, ms: a.ms });
    this.sysroot = await createSysroot(this.o.server, { dir: join(this.o.workDir, 'sysroot'), apiUrl, bootId, keepDisks: true, cmdline: args });
    if (seq !== this.bootSeq) return true;
    const ac = new AbortController();
    this.agent = ac;
    const exit = await runAgent({ sysroot: this.sysroot.dir, signal: ac.signal, timeoutMs: 30 * 60_000, maxAttempts: 10, onLog: (l) => this.o.log?.(`${this.name} agent: ${l}`) });
    if (this.agent === ac) this.agent = undefined;
    this.o.onEvent?.(this.name, { kind: 'agent-exit', exit: exit.outcome, code: exit.outcome === 'exited' ? exit.code : undefined });
    if (seq !== this.bootSeq) return true;
    if (exit.outcome === 'poweroff') {
      await this.o.powerOffViaBmc();
      return true;
    }
    // init ended: the kernel panics; panic=N on its command line reboots it after N s (0 or absent: it hangs, as Linux does).
    const panic = Number(arg('panic') ?? 0);
    this.o.onEvent?.(this.name, { kind: 'kernel-panic', rebootInMs: panic > 0 ? panic * 1000 : undefined });
    if (panic > 0) {
      await sleep(panic * 1000, undefined, { signal }).catch(() => undefined);
      if (seq === this.bootSeq) this.powerOn(++this.bootSeq);
    }
    return true;
  }

  async stop(): Promise<void> {
    this.bootSeq++;
    this.powerSignal.abort();
    this.agent?.abort();
    const os = this.labOs;
    this.labOs = undefined;
    await os?.stop();
  }
}
