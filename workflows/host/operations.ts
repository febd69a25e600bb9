/**
 * The steps of the host lifecycle (register, inspect, provision, deprovision,
 * power), each a sequence of activities, timers and waits for agent reports.
 * Each throws on failure; the workflow loop records the failure as the error
 * state of the current operation and retries the step whole, which is safe
 * because every activity is idempotent and every agent boot is a session of
 * its own (an agent of an older session is refused by the plane).
 *
 * Agent sessions outlive the run: the plane keeps them in a durable store,
 * so a run that starts after a terminate, a reset or a plane restart picks up
 * the session the host is in (resumeSession) instead of booting it again.
 */
import { ApplicationFailure, uuid4 } from '@temporalio/workflow';
import type { AgentCommand, AgentReport, AgentReportSignal, EraseResult, ExpectedDisk } from '../../api/agent';
import { FAILURE } from '../../api/errors';
import type { EraseRecordEntry, HostObservation, HostRef, HostSessionRef, HostStatus } from '../../api/host';
import { bmc, plane } from './activities';
import { checksumPlan, cleaningPlan, identityProblem, type HostStep } from './decide';

/** The workflow's mutable state, JSON-plain so it survives continue-as-new. */
export interface HostContext {
  ref: HostRef;
  obs: HostObservation;
  status: HostStatus;
  adopted: boolean;
  everRegistered: boolean;
  session: HostSessionRef | undefined;
  reports: AgentReportSignal[];
  approval: { approver: string; at: string } | undefined;
  /** A deprovisioning is waiting for approveErase (the update is refused otherwise). */
  awaitingApproval: boolean;
  /** The plane's session store was asked, once per run, for a session to resume. */
  sessionLookedUp: boolean;
  waitingFor: string | undefined;
}

/** Waits (continue-as-new aware) until `pred` holds or the timeout passes; true when it holds. */
export type WaitUntil = (pred: () => boolean, timeoutMs?: number) => Promise<boolean>;

/** How long the agent may take, from the boot to its final report. */
export const AGENT_DEADLINE_MS = { inspect: 20 * 60_000, deploy: 2 * 3600_000, erase: 12 * 3600_000 } as const;
/** Erase records kept in status (the full list is in the workflow history). */
const MAX_ERASE_RECORDS = 32;
/** Reports kept while nobody consumes them (older and unknown sessions' reports fall off). */
const MAX_REPORTS = 16;

type AgentOp = HostSessionRef['type'];
/** An agent command before it gets its id; distributes over the union. */
type AgentCommandBody = AgentCommand extends infer C ? (C extends { type: AgentOp } ? Omit<C, 'id'> : never) : never;

/** Thrown when a newer intent (deletion, a hold, the image removed) makes the running step moot; not an error state. */
export class OperationInterrupted extends Error {
  override name = 'OperationInterrupted';
}

export type StepOutcome = { kind: 'done'; message?: string } | { kind: 'disk-failed'; message: string };

export class HostOperations {
  constructor(
    private readonly ctx: HostContext,
    private readonly waitUntil: WaitUntil,
  ) {}

  private get target() {
    return { host: this.ctx.ref, bmc: this.ctx.obs.spec.bmc };
  }

  /** Keeps a report for the waiter; one per command, bounded. */
  acceptReport(r: AgentReportSignal): void {
    if (this.ctx.reports.some((x) => x.report.commandId === r.report.commandId)) return;
    this.ctx.reports.push(r);
    if (this.ctx.reports.length > MAX_REPORTS) this.ctx.reports.shift();
  }

  async run(step: HostStep): Promise<StepOutcome> {
    switch (step) {
      case 'register':
        await this.register();
        return { kind: 'done' };
      case 'inspect':
        await this.inspect();
        return { kind: 'done' };
      case 'provision':
        await this.provision();
        return { kind: 'done' };
      case 'deprovision':
        return this.deprovision();
      case 'power-on':
        await this.setPower('on');
        return { kind: 'done' };
      case 'power-off':
        // A provisioned host runs an OS: ask it to shut down before cutting power, as Ironic does.
        await this.setPower('off', this.ctx.status.provisioning.state === 'provisioned' || this.ctx.status.provisioning.state === 'externally provisioned');
        return { kind: 'done' };
      case 'power-off-before-delete':
        await this.setPower('off');
        await plane.forgetHostBoot({ host: this.ctx.ref });
        return { kind: 'done' };
    }
  }

  /**
   * Registration and adoption alike: the credentials resolve, the BMC answers,
   * power is read, the boot MAC is claimed, and the BMC still fronts the
   * machine this host was inspected as. Nothing is written, nothing rebooted.
   */
  private async register(): Promise<void> {
    const res = await bmc.bmcCheckAccess(this.target);
    const mismatch = identityProblem(this.ctx.status, res.serialNumber, this.ctx.obs.spec.bmc.address);
    if (mismatch) throw ApplicationFailure.create({ type: FAILURE.HostIdentityMismatch, nonRetryable: true, message: mismatch });
    this.ctx.status.poweredOn = res.poweredOn;
    if (this.ctx.obs.spec.bootMACAddress) await plane.claimBootMac({ host: this.ctx.ref, mac: this.ctx.obs.spec.bootMACAddress });
    this.ctx.adopted = true;
    this.ctx.everRegistered = true;
  }

  private async setPower(state: 'on' | 'off', soft = false): Promise<void> {
    const res = await bmc.bmcSetPower({ ...this.target, state, ...(soft ? { soft } : {}) });
    this.ctx.status.poweredOn = res.poweredOn;
  }

  private bootMac(): string {
    const mac = this.ctx.obs.spec.bootMACAddress;
    if (!mac) throw ApplicationFailure.create({ type: FAILURE.SpecInvalid, nonRetryable: true, message: 'spec.bootMACAddress is empty: set the MAC of the NIC that PXE-boots' });
    return mac;
  }

  /**
   * A fresh run asks the plane once whether the host is already in an agent
   * session of this kind (a run that was terminated or lost mid-operation):
   * then it waits for that agent instead of booting the host again.
   */
  private async resumeSession(type: AgentOp, matches: (c: AgentCommand | undefined) => boolean): Promise<void> {
    if (this.ctx.session || this.ctx.sessionLookedUp) return;
    this.ctx.sessionLookedUp = true;
    const view = await plane.getAgentSession({ host: this.ctx.ref });
    if (!view || view.type !== type || view.state === 'invalidated' || !matches(view.command)) return;
    this.ctx.session = {
      commandId: view.commandId,
      type,
      bootId: view.bootId,
      // A session whose boot script was never served may not have been powered on yet: boot it (same session).
      booted: view.state !== 'prepared',
      startedAtMs: Date.parse(view.preparedAt) || Date.now(),
    };
    if (view.state === 'finished' && view.report) this.acceptReport({ bootId: view.bootId, report: view.report, receivedAt: view.preparedAt });
  }

  /**
   * Runs `command` on the host's agent: one session (boot + token + command)
   * in the plane, PXE next, power on or reset, then wait for the final
   * report. Retried after a failure, a session that never booted is booted
   * again; a finished or dead one is replaced by a new session.
   */
  private async runAgent(body: AgentCommandBody, opts: { userData?: { name: string }; inspectedDisks?: ExpectedDisk[]; abandonWhen?: () => string | undefined } = {}): Promise<AgentReport> {
    const type = body.type;
    if (this.ctx.session && this.ctx.session.type !== type) this.ctx.session = undefined;
    if (!this.ctx.session) this.ctx.session = { commandId: `${type}-${uuid4()}`, type, booted: false, startedAtMs: Date.now() };
    const s = this.ctx.session;
    if (!s.booted) {
      const { bootId } = await plane.startAgentSession({
        host: this.ctx.ref,
        mac: this.bootMac(),
        command: { ...body, id: s.commandId } as AgentCommand,
        ...(opts.userData ? { userData: opts.userData } : {}),
        ...(opts.inspectedDisks ? { inspectedDisks: opts.inspectedDisks } : {}),
      });
      s.bootId = bootId;
      await bmc.bmcSetNextBoot({ ...this.target, target: 'pxe', persistent: false });
      if (this.ctx.status.poweredOn) await bmc.bmcReboot(this.target);
      else this.ctx.status.poweredOn = (await bmc.bmcSetPower({ ...this.target, state: 'on' })).poweredOn;
      s.booted = true;
      s.startedAtMs = Date.now();
    }
    this.ctx.waitingFor = `agent ${type} (boot ${s.bootId ?? '?'})`;

    const found = () => this.ctx.reports.find((r) => r.report.commandId === s.commandId);
    const abandon = () => opts.abandonWhen?.();
    const left = s.startedAtMs + AGENT_DEADLINE_MS[type] - Date.now();
    const arrived = await this.waitUntil(() => found() !== undefined || abandon() !== undefined, Math.max(0, left));
    const report = found();
    if (!report) {
      const why = abandon();
      this.ctx.session = undefined;
      if (why) throw new OperationInterrupted(`${type} abandoned: ${why}`);
      if (!arrived) {
        throw ApplicationFailure.create({
          type: FAILURE.AgentTimeout,
          message: `agent did not report ${type} within ${AGENT_DEADLINE_MS[type] / 60_000} minutes of the boot (boot ${s.bootId}): check the host's console and the PXE logs`,
        });
      }
    }
    this.ctx.session = undefined;
    this.ctx.reports = this.ctx.reports.filter((r) => r !== report);
    if (report!.invalidated) {
      throw ApplicationFailure.create({ type: FAILURE.AgentSessionInvalidated, message: `${'message' in report!.report ? report!.report.message : 'agent session ended by the plane'}: retrying with a fresh boot` });
    }
    return report!.report;
  }

  /** After the agent's work: next boot from disk (or nothing), power as the spec says. */
  private async leaveAgent(mode: 'disk' | 'none'): Promise<void> {
    const mac = this.bootMac();
    if (mode === 'disk') {
      await plane.prepareBoot({ host: this.ctx.ref, mac, mode: 'disk' });
      await bmc.bmcSetNextBoot({ ...this.target, target: 'disk', persistent: true });
      if (this.ctx.obs.spec.online) {
        await bmc.bmcReboot(this.target);
        this.ctx.status.poweredOn = true;
      } else {
        await this.setPower('off');
      }
      return;
    }
    await plane.clearBoot({ host: this.ctx.ref, mac });
    await this.setPower(this.ctx.obs.spec.online ? 'on' : 'off');
  }

  private inspectedDisks(): ExpectedDisk[] | undefined {
    return this.ctx.status.hardware?.disks.map((d) => ({ name: d.name, serialNumber: d.serialNumber, sizeBytes: d.sizeBytes }));
  }

  private async inspect(): Promise<void> {
    await this.resumeSession('inspect', () => true);
    const report = await this.runAgent({ type: 'inspect' }, { abandonWhen: () => this.interruptReason() });
    if (report.status !== 'ok' || report.type !== 'inspect') {
      throw ApplicationFailure.create({ type: FAILURE.AgentCommandFailed, message: `inspection failed: ${'message' in report ? report.message : 'unexpected report'}` });
    }
    this.ctx.status.hardware = report.data;
    this.ctx.status.hardwareProfile = 'unknown';
    // Back to rest: an available host does not PXE-boot the agent again.
    await this.leaveAgent('none');
  }

  private async provision(): Promise<void> {
    const spec = this.ctx.obs.spec;
    const plan = checksumPlan(spec.image);
    if (!plan.ok) throw ApplicationFailure.create({ type: FAILURE.ImageInvalid, nonRetryable: true, message: plan.message });
    const imageUrl = spec.image!.url;
    await this.resumeSession('deploy', (c) => c?.type === 'deploy' && c.imageUrl === imageUrl && c.checksum === plan.checksum);
    const report = await this.runAgent(
      { type: 'deploy', imageUrl, checksum: plan.checksum, checksumType: plan.checksumType, rootDeviceHints: spec.rootDeviceHints, hasUserData: !!spec.userData?.name },
      {
        ...(spec.userData?.name ? { userData: { name: spec.userData.name } } : {}),
        inspectedDisks: this.inspectedDisks(),
        abandonWhen: () => this.interruptReason() ?? (this.ctx.obs.spec.image?.url ? undefined : 'spec.image removed'),
      },
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

  /** Deletion, a detach or a pause makes an inspection or deploy moot (an erase is what deletion waits for). */
  private interruptReason(): string | undefined {
    if (this.ctx.obs.deleting) return 'deletion requested';
    if (this.ctx.obs.detached) return 'detached';
    return undefined;
  }

  private async deprovision(): Promise<StepOutcome> {
    const plan = cleaningPlan(this.ctx.obs.spec.automatedCleaningMode, this.ctx.obs.preciousData, this.ctx.approval !== undefined);
    if (plan.erase && plan.needsApproval) {
      this.ctx.waitingFor = plan.reason;
      this.ctx.status.operationalStatus = 'delayed';
      this.ctx.awaitingApproval = true;
      try {
        await this.waitUntil(() => this.ctx.approval !== undefined || !this.ctx.obs.preciousData || this.ctx.obs.detached || this.ctx.obs.paused);
      } finally {
        this.ctx.awaitingApproval = false;
      }
      if (this.ctx.approval === undefined && this.ctx.obs.preciousData) throw new OperationInterrupted('held while waiting for an erase approval');
      this.ctx.status.operationalStatus = 'OK';
    }
    if (this.ctx.approval) this.ctx.status.lastApproval = { action: 'erase', ...this.ctx.approval };

    let message = plan.reason;
    if (plan.erase) {
      await this.resumeSession('erase', (c) => c?.type === 'erase' && c.mode === plan.mode);
      const report = await this.runAgent({ type: 'erase', mode: plan.mode }, { inspectedDisks: this.inspectedDisks(), abandonWhen: () => (this.ctx.obs.detached ? 'detached' : undefined) });
      // One approval covers one erase that ran to an end (done, or a disk found bad);
      // a failed attempt keeps it for the retry.
      if (report.status !== 'failed' || report.failedDisk) this.ctx.approval = undefined;
      if (report.status === 'failed' && report.failedDisk) {
        this.recordErase({ mode: plan.mode, disks: [{ disk: report.failedDisk, serialNumber: '', method: 'overwrite', result: 'failed', verified: false, detail: report.message, finishedAt: new Date().toISOString() }] });
        await this.setPower('off');
        return { kind: 'disk-failed', message: `disk ${report.failedDisk} failed during erase (${report.message}): replace it; the host stays out of the pool` };
      }
      if (report.status !== 'ok' || report.type !== 'erase') {
        throw ApplicationFailure.create({ type: FAILURE.AgentCommandFailed, message: `erase failed: ${'message' in report ? report.message : 'unexpected report'}` });
      }
      this.recordErase(report.data);
      const bad = report.data.disks.filter((d) => d.result !== 'ok' || !d.verified);
      if (bad.length > 0) {
        await this.setPower('off');
        return { kind: 'disk-failed', message: `erase not verified on ${bad.map((d) => `${d.disk} (serial ${d.serialNumber})`).join(', ')}: replace the disk(s); the host stays out of the pool` };
      }
      message = `disks erased (${plan.mode}) and verified: ${report.data.disks.map((d) => d.disk).join(', ')}`;
    } else {
      this.ctx.approval = undefined;
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
