/**
 * In-memory hardware for workflow tests (the only layer where activities are
 * stubbed): BMC power/boot state, the PXE registry, and an agent that answers
 * queued commands by signalling the workflow, as the real agent API does.
 * Knobs let a test inject each failure the host lifecycle must survive.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import type { AgentCommand, AgentReport, InspectionData } from '../../api/agent';
import { FAILURE } from '../../api/errors';
import type { HostActivities } from '../../api/host-activities';
import { HOST_MESSAGES, type HostStatus } from '../../api/host';
import { workflowIdFor } from '../../api/names';

export const SAMPLE_HARDWARE: InspectionData = {
  cpu: { arch: 'x86_64', model: 'Lab CPU', count: 4 },
  memoryMiB: 8192,
  disks: [{ name: 'vda', sizeBytes: 20 * 2 ** 30, serialNumber: 'DISK-A1', model: 'virt', rotational: false }],
  nics: [{ name: 'eth0', mac: '52:54:00:00:00:01' }],
  system: { manufacturer: 'Ironflow Lab', productName: 'sim', serialNumber: 'SN-1' },
};

export interface FakeKnobs {
  /** bmcCheckAccess throws BmcCredentialsMissing while true. */
  credentialsMissing: boolean;
  /** Power actions throw BmcActionNotApplied this many more times. */
  powerFailures: number;
  /** The agent answers a command of this type with status failed (once each, then clears). */
  agentFails: Partial<Record<'inspect' | 'deploy' | 'erase', { message: string; failedDisk?: string }>>;
  /** The agent never answers. */
  agentSilent: boolean;
  /** Checksum the agent reports for deploys (default: the requested one). */
  deployedChecksum?: string;
}

export interface FakeWorld {
  activities: HostActivities;
  knobs: FakeKnobs;
  poweredOn: boolean;
  nextBoot: { target: string; persistent: boolean };
  statuses: HostStatus[];
  released: number;
  commands: AgentCommand[];
  bootModes: string[];
  /** Every activity call, by name, in order. */
  calls: string[];
  lastStatus(): HostStatus | undefined;
}

export function createFakeWorld(client: () => Client, opts: { agentDelayMs?: number } = {}): FakeWorld {
  const delay = opts.agentDelayMs ?? 50;
  let bootSeq = 0;
  let pending: { host: { namespace: string; name: string }; bootId: string; command: AgentCommand } | undefined;
  let currentBoot: string | undefined;

  const world: FakeWorld = {
    knobs: { credentialsMissing: false, powerFailures: 0, agentFails: {}, agentSilent: false },
    poweredOn: false,
    nextBoot: { target: 'none', persistent: false },
    statuses: [],
    released: 0,
    commands: [],
    bootModes: [],
    calls: [],
    lastStatus: () => world.statuses[world.statuses.length - 1],
    activities: undefined as unknown as HostActivities,
  };

  const answer = (data: AgentCommand): AgentReport => {
    const fail = data.type !== 'none' && data.type !== 'poweroff' ? world.knobs.agentFails[data.type] : undefined;
    if (fail && (data.type === 'inspect' || data.type === 'deploy' || data.type === 'erase')) {
      delete world.knobs.agentFails[data.type];
      return { commandId: data.id, type: data.type, status: 'failed', message: fail.message, failedDisk: fail.failedDisk };
    }
    switch (data.type) {
      case 'inspect':
        return { commandId: data.id, type: 'inspect', status: 'ok', data: SAMPLE_HARDWARE };
      case 'deploy':
        return {
          commandId: data.id,
          type: 'deploy',
          status: 'ok',
          data: { rootDevice: 'vda', bytesWritten: 1024, checksumType: data.checksumType, checksum: world.knobs.deployedChecksum ?? data.checksum, userDataWritten: data.hasUserData },
        };
      case 'erase':
        return {
          commandId: data.id,
          type: 'erase',
          status: 'ok',
          data: { mode: data.mode, disks: [{ disk: 'vda', serialNumber: 'DISK-A1', method: data.mode === 'metadata' ? 'metadata' : 'overwrite', result: 'ok', verified: true, finishedAt: new Date().toISOString() }] },
        };
      default:
        throw new Error(`fake agent cannot answer ${data.type}`);
    }
  };

  /** Power-on with next boot PXE and a queued command: the "agent" boots and reports. */
  const maybeBootAgent = () => {
    if (!world.poweredOn || world.nextBoot.target !== 'pxe' || !pending || pending.bootId !== currentBoot) return;
    const job = pending;
    pending = undefined;
    if (world.knobs.agentSilent) return;
    const report = answer(job.command);
    setTimeout(() => {
      client()
        .workflow.getHandle(workflowIdFor('BareMetalHost', job.host.namespace, job.host.name))
        .signal(HOST_MESSAGES.agentReport, { bootId: job.bootId, report, receivedAt: new Date().toISOString() })
        .catch(() => undefined);
    }, delay);
  };

  const powerAction = (what: string) => {
    world.calls.push(what);
    if (world.knobs.powerFailures > 0) {
      world.knobs.powerFailures--;
      // Non-retryable here to model the activity having exhausted its retries
      // (the real one polls for minutes per attempt).
      throw ApplicationFailure.create({ type: FAILURE.BmcActionNotApplied, nonRetryable: true, message: 'BMC 127.0.0.1:8000 accepted the power action but the server stayed in its old state' });
    }
  };

  world.activities = {
    async bmcCheckAccess() {
      world.calls.push('bmcCheckAccess');
      if (world.knobs.credentialsMissing) {
        throw ApplicationFailure.create({ type: FAILURE.BmcCredentialsMissing, nonRetryable: true, message: 'BMC credentials Secret t/bmc-secret does not exist: create it with non-empty keys "username" and "password"' });
      }
      return { poweredOn: world.poweredOn };
    },
    async bmcSetPower({ state }) {
      powerAction(`bmcSetPower:${state}`);
      const changed = world.poweredOn !== (state === 'on');
      world.poweredOn = state === 'on';
      maybeBootAgent();
      return { poweredOn: world.poweredOn, changed };
    },
    async bmcReboot() {
      powerAction('bmcReboot');
      world.poweredOn = true;
      maybeBootAgent();
    },
    async bmcSetNextBoot({ target, persistent }) {
      world.calls.push(`bmcSetNextBoot:${target}`);
      world.nextBoot = { target, persistent };
    },
    async prepareBoot({ mode, renew }) {
      world.calls.push(`prepareBoot:${mode}`);
      world.bootModes.push(mode);
      if (renew || !currentBoot) currentBoot = `boot-${++bootSeq}`;
      return { bootId: currentBoot };
    },
    async clearBoot() {
      world.calls.push('clearBoot');
      world.bootModes.push('none');
    },
    async sendAgentCommand({ host, bootId, command }) {
      world.calls.push(`sendAgentCommand:${command.type}`);
      world.commands.push(command);
      pending = { host, bootId, command };
    },
    async writeHostStatus({ status }) {
      world.statuses.push(JSON.parse(JSON.stringify(status)) as HostStatus);
    },
    async releaseHost() {
      world.calls.push('releaseHost');
      world.released++;
    },
  };
  return world;
}
