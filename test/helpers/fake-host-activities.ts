/**
 * In-memory hardware for workflow tests (the only layer where activities are
 * stubbed): BMC power/boot state, the PXE registry, and an agent that answers
 * queued commands by signalling the workflow, as the real agent API does.
 * Knobs let a test inject each failure the host lifecycle must survive.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import type { AgentCommand, AgentReport, AgentSessionView, InspectionData } from '../../api/agent';
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
  /** The boot MAC this host claimed (claimBootMac), if any. */
  claimedMac?: string;
  lastStatus(): HostStatus | undefined;
}

interface HostHardware {
  world: FakeWorld;
  pending?: { host: { namespace: string; name: string }; bootId: string; command: AgentCommand };
  currentBoot?: string;
  /** Agent sessions by command id (startAgentSession), as getAgentSession reports them. */
  sessions: Map<string, AgentSessionView>;
}

export interface FakeFleet {
  activities: HostActivities;
  /** The hardware of one host, created on first use. */
  host(namespace: string, name: string): FakeWorld;
}

/**
 * Many hosts behind one set of activities (one worker), each with its own
 * power, boot and agent state, keyed by the HostRef in every activity input.
 */
export function createFakeFleet(
  client: () => Client,
  opts: { agentDelayMs?: number; keepStatuses?: boolean; onStatus?: (host: { namespace: string; name: string }, status: HostStatus) => void } = {},
): FakeFleet {
  const delay = opts.agentDelayMs ?? 50;
  const keepStatuses = opts.keepStatuses ?? true;
  const hosts = new Map<string, HostHardware>();
  let bootSeq = 0;

  const hw = (ref: { namespace: string; name: string }): HostHardware => {
    const key = `${ref.namespace}/${ref.name}`;
    let h = hosts.get(key);
    if (!h) {
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
      h = { world, sessions: new Map() };
      hosts.set(key, h);
    }
    return h;
  };

  const answer = (world: FakeWorld, data: AgentCommand): AgentReport => {
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
  const maybeBootAgent = (h: HostHardware) => {
    const { world } = h;
    if (!world.poweredOn || world.nextBoot.target !== 'pxe' || !h.pending || h.pending.bootId !== h.currentBoot) return;
    const job = h.pending;
    h.pending = undefined;
    if (world.knobs.agentSilent) return;
    const report = answer(world, job.command);
    const view = h.sessions.get(job.command.id);
    if (view?.bootId === job.bootId) h.sessions.set(job.command.id, { ...view, state: 'finished', report });
    setTimeout(() => {
      client()
        .workflow.getHandle(workflowIdFor('BareMetalHost', job.host.namespace, job.host.name))
        .signal(HOST_MESSAGES.agentReport, { bootId: job.bootId, report, receivedAt: new Date().toISOString() })
        .catch(() => undefined);
    }, delay);
  };

  const powerAction = (world: FakeWorld, what: string) => {
    world.calls.push(what);
    if (world.knobs.powerFailures > 0) {
      world.knobs.powerFailures--;
      // Non-retryable here to model the activity having exhausted its retries
      // (the real one polls for minutes per attempt).
      throw ApplicationFailure.create({ type: FAILURE.BmcActionNotApplied, nonRetryable: true, message: 'BMC 127.0.0.1:8000 accepted the power action but the server stayed in its old state' });
    }
  };

  const activities: HostActivities = {
    async bmcCheckAccess({ host }) {
      const { world } = hw(host);
      world.calls.push('bmcCheckAccess');
      if (world.knobs.credentialsMissing) {
        throw ApplicationFailure.create({ type: FAILURE.BmcCredentialsMissing, nonRetryable: true, message: 'BMC credentials Secret t/bmc-secret does not exist: create it with non-empty keys "username" and "password"' });
      }
      return { poweredOn: world.poweredOn };
    },
    async bmcSetPower({ host, state }) {
      const h = hw(host);
      powerAction(h.world, `bmcSetPower:${state}`);
      const changed = h.world.poweredOn !== (state === 'on');
      h.world.poweredOn = state === 'on';
      maybeBootAgent(h);
      return { poweredOn: h.world.poweredOn, changed };
    },
    async bmcReboot({ host }) {
      const h = hw(host);
      powerAction(h.world, 'bmcReboot');
      h.world.poweredOn = true;
      maybeBootAgent(h);
    },
    async bmcSetNextBoot({ host, target, persistent }) {
      const { world } = hw(host);
      world.calls.push(`bmcSetNextBoot:${target}`);
      world.nextBoot = { target, persistent };
    },
    async prepareBoot({ host, mode, renew }) {
      const h = hw(host);
      h.world.calls.push(`prepareBoot:${mode}`);
      h.world.bootModes.push(mode);
      if (renew || !h.currentBoot) h.currentBoot = `boot-${++bootSeq}`;
      return { bootId: h.currentBoot };
    },
    async clearBoot({ host }) {
      const { world } = hw(host);
      world.calls.push('clearBoot');
      world.bootModes.push('none');
    },
    async sendAgentCommand({ host, bootId, command }) {
      const h = hw(host);
      h.world.calls.push(`sendAgentCommand:${command.type}`);
      h.world.commands.push(command);
      h.pending = { host, bootId, command };
    },
    async startAgentSession({ host, command }) {
      const h = hw(host);
      h.world.calls.push(`startAgentSession:${command.type}`);
      const known = h.sessions.get(command.id);
      if (known) return { bootId: known.bootId };
      h.currentBoot = `boot-${++bootSeq}`;
      h.world.bootModes.push('agent');
      h.world.commands.push(command);
      h.pending = { host, bootId: h.currentBoot, command };
      h.sessions.set(command.id, { bootId: h.currentBoot, commandId: command.id, type: command.type, state: 'prepared', preparedAt: new Date().toISOString() });
      return { bootId: h.currentBoot };
    },
    async getAgentSession({ host, commandId }) {
      return hw(host).sessions.get(commandId);
    },
    async claimBootMac({ host, mac }) {
      const { world } = hw(host);
      world.calls.push('claimBootMac');
      for (const [key, other] of hosts) {
        if (key !== `${host.namespace}/${host.name}` && other.world.claimedMac === mac) {
          throw ApplicationFailure.create({ type: FAILURE.BootMacConflict, nonRetryable: true, message: `MAC ${mac} is held by another BareMetalHost` });
        }
      }
      world.claimedMac = mac;
    },
    async forgetHostBoot({ host }) {
      const h = hw(host);
      h.world.calls.push('forgetHostBoot');
      h.world.claimedMac = undefined;
      h.pending = undefined;
      h.currentBoot = undefined;
      h.sessions.clear();
    },
    async writeHostStatus({ host, status }) {
      const { world } = hw(host);
      if (keepStatuses) world.statuses.push(JSON.parse(JSON.stringify(status)) as HostStatus);
      else world.statuses[0] = status;
      opts.onStatus?.(host, status);
    },
    async releaseHost({ host }) {
      const { world } = hw(host);
      world.calls.push('releaseHost');
      world.released++;
    },
  };
  return { activities, host: (namespace, name) => hw({ namespace, name }).world };
}

/** One host's view of a fleet, for tests that drive a single workflow. */
export function createFakeWorld(client: () => Client, ref: { namespace: string; name: string }, opts: { agentDelayMs?: number } = {}): FakeWorld {
  const fleet = createFakeFleet(client, opts);
  const world = fleet.host(ref.namespace, ref.name);
  world.activities = fleet.activities;
  return world;
}
