/**
 * The multi-step operations of the host lifecycle (register, inspect,
 * provision, deprovision, power), each a sequence of activities, timers and
 * waits for agent reports. Each throws on failure; the workflow loop turns
 * that into the error state of the current operation and retries it whole,
 * which is safe because every activity is idempotent and every boot gets a
 * fresh bootId (an agent of an older boot is refused by the agent API).
 */
import { ApplicationFailure, condition, uuid4 } from '@temporalio/workflow';
import type { AgentCommand, AgentReport, AgentReportSignal, EraseResult } from '../../api/agent';
import { FAILURE } from '../../api/errors';
import type { EraseRecordEntry, HostObservation, HostRef, HostStatus } from '../../api/host';
import { bmc, plane } from './activities';
import { checksumPlan, cleaningPlan } from './decide';

/** The workflow's mutable state, JSON-plain so it survives continue-as-new. */
export interface HostContext {
  ref: HostRef;
  obs: HostObservation;
  /** Bumped on every accepted observation; waits compare it to notice spec changes. */
  obsVersion: number;
  status: HostStatus;
  reports: AgentReportSignal[];
  retryRequested: boolean;
  waitingFor: string | undefined;
  approval: { approver: string; at: string } | undefined;
}

/** How long the agent may take, from power-on to its report. */
const AGENT_DEADLINES = { inspect: '20 minutes', deploy: '2 hours', erase: '12 hours' } as const;
/** Erase records kept in status (the full list is in the workflow history). */
const MAX_ERASE_RECORDS = 32;

/** An agent command before it gets its id; distributes over the union. */
type AgentCommandBody = AgentCommand extends infer C ? (C extends { type: 'inspect' | 'deploy' | 'erase' } ? Omit<C, 'id'> : never) : never;

/** Thrown when a newer intent (deletion) makes the running operation moot; not an error state. */
export class OperationInterrupted extends Error {
  override name = 'OperationInterrupted';
}

export type DeprovisionOutcome = { kind: 'done'; message: string } | { kind: 'disk-failed'; message: string };

export class HostOperations {
  /** Which kind of step ran last, so a failure maps to the right Metal3 error type. */
  lastStep: 'power' | 'operation' = 'operation';

  constructor(private readonly ctx: HostContext) {}

  private get target() {
    return { host: this.ctx.ref, bmc: this.ctx.obs.spec.bmc };
  }

  async writeStatus(): Promise<void> {
    this.ctx.status.lastUpdated = new Date().toISOString();
    await plane.writeHostStatus({ host: this.ctx.ref, status: this.ctx.status });
  }

  async register(): Promise<void> {
    this.lastStep = 'operation';
    const res = await bmc.bmcCheckAccess(this.target);
    this.ctx.status.poweredOn = res.poweredOn;
  }

  async setPower(state: 'on' | 'off'): Promise<void> {
    this.lastStep = 'power';
    const res = await bmc.bmcSetPower({ ...this.target, state });
    this.ctx.status.poweredOn = res.poweredOn;
    this.lastStep = 'operation';
  }

  private bootMac(): string {
    const mac = this.ctx.obs.spec.bootMACAddress;
    if (!mac) {
      throw ApplicationFailure.nonRetryable('spec.bootMACAddress is empty: set the MAC of the NIC that PXE-boots to inspect or provision this host', 'BootMacMissing');
    }
    return mac;
  }

  /**
   * Boots the agent over PXE with `command` queued for it and waits for its
   * result. The command is queued before power-on so the agent finds it at
   * its first poll.
   */
  private async runAgent(command: AgentCommandBody, userData?: { namespace: string; name: string }): Promise<AgentReport> {
    const mac = this.bootMac();
    const { bootId } = await plane.prepareBoot({ host: this.ctx.ref, mac, mode: 'agent', renew: true });
    const id = `${command.type}-${uuid4()}`;
    await plane.sendAgentCommand({ host: this.ctx.ref, bootId, command: { ...command, id } as AgentCommand, userData });
    await bmc.bmcSetNextBoot({ ...this.target, target: 'pxe', persistent: false });
    this.lastStep = 'power';
    if (this.ctx.status.poweredOn) await bmc.bmcReboot(this.target);
    else this.ctx.status.poweredOn = (await bmc.bmcSetPower({ ...this.target, state: 'on' })).poweredOn;
    this.lastStep = 'operation';
    this.ctx.waitingFor = `agent ${command.type} (boot ${bootId})`;

    const found = () => this.ctx.reports.find((r) => r.bootId === bootId && r.report.commandId === id);
    // Deletion abandons an inspection or deploy (the loop then erases or powers
    // off); an erase is never abandoned, it is what deletion waits for.
    const abandon = () => command.type !== 'erase' && this.ctx.obs.deleting;
    const arrived = await condition(() => found() !== undefined || abandon(), AGENT_DEADLINES[command.type]);
    if (abandon() && !found()) throw new OperationInterrupted(`${command.type} abandoned: deletion requested`);
    if (!arrived) {
      throw ApplicationFailure.create({ type: FAILURE.AgentTimeout, message: `agent did not report ${command.type} within ${AGENT_DEADLINES[command.type]} of power-on (boot ${bootId}): check the host's console and PXE logs` });
    }
    const report = found()!.report;
    this.ctx.reports = this.ctx.reports.filter((r) => r.bootId !== bootId);
    return report;
  }

  /** After the agent's work: next boot from disk (or nothing), power as the spec says. */
  private async leaveAgent(mode: 'disk' | 'none'): Promise<void> {
    const mac = this.bootMac();
    if (mode === 'disk') {
      await plane.prepareBoot({ host: this.ctx.ref, mac, mode: 'disk' });
      await bmc.bmcSetNextBoot({ ...this.target, target: 'disk', persistent: true });
    } else {
      await plane.clearBoot({ host: this.ctx.ref, mac });
    }
    if (mode === 'disk' && this.ctx.obs.spec.online) {
      this.lastStep = 'power';
      await bmc.bmcReboot(this.target);
      this.lastStep = 'operation';
    } else {
      await this.setPower(mode === 'disk' ? 'off' : this.ctx.obs.spec.online ? 'on' : 'off');
    }
  }

  async inspect(): Promise<void> {
    const report = await this.runAgent({ type: 'inspect' });
    if (report.status !== 'ok' || report.type !== 'inspect') {
      throw ApplicationFailure.create({ type: FAILURE.AgentCommandFailed, message: `inspection failed: ${'message' in report ? report.message : 'unexpected report'}` });
    }
    this.ctx.status.hardware = report.data;
    this.ctx.status.hardwareProfile = 'unknown';
    // Back to rest: an available host does not PXE-boot the agent again.
    await this.leaveAgent('none');
  }

  async provision(): Promise<void> {
    const spec = this.ctx.obs.spec;
    const plan = checksumPlan(spec.image);
    if (!plan.ok) throw ApplicationFailure.create({ type: FAILURE.ImageInvalid, nonRetryable: true, message: plan.message });
    const userData = spec.userData?.name ? { namespace: spec.userData.namespace ?? this.ctx.ref.namespace, name: spec.userData.name } : undefined;
    const report = await this.runAgent(
      { type: 'deploy', imageUrl: spec.image!.url, checksum: plan.checksum, checksumType: plan.checksumType, rootDeviceHints: spec.rootDeviceHints, hasUserData: !!userData },
      userData,
    );
    if (report.status !== 'ok' || report.type !== 'deploy') {
      throw ApplicationFailure.create({ type: FAILURE.AgentCommandFailed, message: `image write failed: ${'message' in report ? report.message : 'unexpected report'}` });
    }
    if (report.data.checksum.toLowerCase() !== plan.checksum) {
      throw ApplicationFailure.create({ type: FAILURE.ImageInvalid, message: `image written to ${report.data.rootDevice} reads back as ${report.data.checksumType} ${report.data.checksum}, expected ${plan.checksum}` });
    }
    this.ctx.status.provisioning = { ...this.ctx.status.provisioning, image: spec.image, rootDeviceHints: spec.rootDeviceHints, ID: report.data.rootDevice };
    await this.leaveAgent('disk');
  }

  async deprovision(): Promise<DeprovisionOutcome> {
    const approved = this.ctx.approval !== undefined;
    const plan = cleaningPlan(this.ctx.obs.spec.automatedCleaningMode, this.ctx.obs.preciousData, approved);
    if (plan.erase && plan.needsApproval) {
      this.ctx.waitingFor = plan.reason;
      this.ctx.status.operationalStatus = 'delayed';
      await this.writeStatus();
      await condition(() => this.ctx.approval !== undefined || !this.ctx.obs.preciousData);
      this.ctx.status.operationalStatus = 'OK';
    }
    if (this.ctx.approval) this.ctx.status.lastApproval = { action: 'erase', ...this.ctx.approval };
    // One approval covers one deprovisioning.
    this.ctx.approval = undefined;

    let message = plan.reason;
    if (plan.erase) {
      const report = await this.runAgent({ type: 'erase', mode: plan.mode });
      if (report.status === 'failed' && report.failedDisk) {
        this.recordErase({ mode: plan.mode, disks: [{ disk: report.failedDisk, serialNumber: '', method: 'overwrite', result: 'failed', verified: false, detail: report.message, finishedAt: new Date().toISOString() }] });
        await this.setPower('off');
        return { kind: 'disk-failed', message: `disk ${report.failedDisk} failed during erase (${report.message}): replace it; the host stays in maintenance` };
      }
      if (report.status !== 'ok' || report.type !== 'erase') {
        throw ApplicationFailure.create({ type: FAILURE.AgentCommandFailed, message: `erase failed: ${'message' in report ? report.message : 'unexpected report'}` });
      }
      this.recordErase(report.data);
      const bad = report.data.disks.filter((d) => d.result !== 'ok' || !d.verified);
      if (bad.length > 0) {
        await this.setPower('off');
        return { kind: 'disk-failed', message: `erase not verified on ${bad.map((d) => `${d.disk} (serial ${d.serialNumber})`).join(', ')}: replace the disk(s); the host stays in maintenance` };
      }
      message = `disks erased (${plan.mode}) and verified: ${report.data.disks.map((d) => d.disk).join(', ')}`;
    }
    this.ctx.status.provisioning = { state: this.ctx.status.provisioning.state };
    await this.leaveAgent('none');
    return { kind: 'done', message };
  }

  private recordErase(result: EraseResult): void {
    const entries: EraseRecordEntry[] = result.disks.map((d) => ({ ...d, mode: result.mode }));
    this.ctx.status.erase = [...(this.ctx.status.erase ?? []), ...entries].slice(-MAX_ERASE_RECORDS);
  }
}
