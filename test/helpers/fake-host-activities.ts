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
import type { HostActivities, HostAgentSessionActivities } from '../../api/host-activities';
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
  agentFails: Partial<Record<'inspect' | 'deploy' | 'erase', { message: string; failedDisk?: string; /** Fail every time, not once. */ keep?: boolean }>>;
  /** The agent never answers. */
  agentSilent: boolean;
  /** Checksum the agent reports for deploys (default: the requested one). */
  deployedChecksum?: string;
  /** bmcCheckAccess fails as an unreachable BMC while true. */
  bmcDown?: boolean;
  /** writeHostStatus fails (retryably, as with the Kubernetes API down) this many more times. */
  statusWriteFailures: number;
}

/** Everything the host workflow calls. */
export type AllHostActivities = HostActivities & HostAgentSessionActivities;

export interface FakeWorld {
  activities: AllHostActivities;
  knobs: FakeKnobs;
  poweredOn: boolean;
  nextBoot: { target: string; persistent: boolean };
  statuses: HostStatus[];
  released: number;
  commands: AgentCommand[];
  bootModes: string[];
  /** Every activity call, by name, in order. */
  calls: string[];
  /** The plane's session store for this host (the durable one survives workflow runs). */
  sessions: AgentSessionView[];
  /** MAC claimed by this host, if any. */
  claimedMac?: string;
  /** Serial number the BMC reports (identity check on adoption). */
  bmcSerial?: string;
  /** Events written with status, in order. */
  events: Array<{ type: string; reason: string; message: string }>;
  lastStatus(): HostStatus | undefined;
}

interface HostHardware {
  world: FakeWorld;
  pending?: { host: { namespace: string; name: string }; bootId: string; command: AgentCommand };
  currentBoot?: string;
}

export interface FakeFleet {
  activities: AllHostActivities;
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
        knobs: { credentialsMissing: false, powerFailures: 0, agentFails: {}, agentSilent: false, statusWriteFailures: 0 },
        poweredOn: false,
        nextBoot: { target: 'none', persistent: false },
        statuses: [],
        released: 0,
        commands: [],
        bootModes: [],
        calls: [],
        sessions: [],
        events: [],
        lastStatus: () => world.statuses[world.statuses.length - 1],
        activities: undefined as unknown as AllHostActivities,
      };
      h = { world };
      hosts.set(key, h);
    }
    return h;
  };

  const answer = (world: FakeWorld, data: AgentCommand): AgentReport => {
    const fail = data.type !== 'none' && data.type !== 'poweroff' ? world.knobs.agentFails[data.type] : undefined;
    if (fail && (data.type === 'inspect' || data.type === 'deploy' || data.type === 'erase')) {
      if (!fail.keep) delete world.knobs.agentFails[data.type];
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
    const session = world.sessions.find((x) => x.commandId === job.command.id);
    if (session) session.state = 'running';
    if (world.knobs.agentSilent) return;
    const report = answer(world, job.command);
    setTimeout(() => {
      if (session) {
        session.state = 'finished';
        session.report = report;
      }
      client()
        .workflow.getHandle(workflowIdFor('BareMetalHost', job.host.namespace, job.host.name))
        .signal(HOST_MESSAGES.agentReport, { bootId: job.bootId, report, receivedAt: new Date().toISOString() })
        .catch(() => undefined);
    }, delay);
  };

  const powerAction = (world: FakeWorld, what: string) => {
    world.calls.push(what);
    if (world.knobs.credentialsMissing) {
      throw ApplicationFailure.create({ type: FAILURE.BmcCredentialsMissing, nonRetryable: true, message: 'BMC credentials Secret t/bmc-secret does not exist: create it with non-empty keys "username" and "password"' });
    }
    if (world.knobs.powerFailures > 0) {
      world.knobs.powerFailures--;
      // Non-retryable here to model the activity having exhausted its retries
      // (the real one polls for minutes per attempt).
      throw ApplicationFailure.create({ type: FAILURE.BmcActionNotApplied, nonRetryable: true, message: 'BMC 127.0.0.1:8000 accepted the power action but the server stayed in its old state' });
    }
  };

  const activities: AllHostActivities = {
    async bmcCheckAccess({ host }) {
      const { world } = hw(host);
      world.calls.push('bmcCheckAccess');
      if (world.knobs.credentialsMissing) {
        throw ApplicationFailure.create({ type: FAILURE.BmcCredentialsMissing, nonRetryable: true, message: 'BMC credentials Secret t/bmc-secret does not exist: create it with non-empty keys "username" and "password"' });
      }
      if (world.knobs.bmcDown) {
        throw ApplicationFailure.create({ type: FAILURE.BmcUnreachable, nonRetryable: true, message: 'BMC 127.0.0.1:8000 did not answer within 5 s (connection refused)' });
      }
      return { poweredOn: world.poweredOn, ...(world.bmcSerial ? { serialNumber: world.bmcSerial } : {}) };
    },
    async bmcSetPower({ host, state }) {
      const h = hw(host);
      powerAction(h.world, `bmcSetPower:${state}`);
      const changed = h.world.poweredOn !== (state === 'on');
      h.world.poweredOn = state === 'on';
      maybeBootAgent(h);
      return { poweredOn: h.world.poweredOn, changed, method: changed ? 'hard' : 'none' };
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
    async writeHostStatus({ host, status, events }) {
      const { world } = hw(host);
      if (world.knobs.statusWriteFailures > 0) {
        world.knobs.statusWriteFailures--;
        throw new Error('connect ECONNREFUSED 127.0.0.1:6443 (the Kubernetes API is down)');
      }
      if (keepStatuses) world.statuses.push(JSON.parse(JSON.stringify(status)) as HostStatus);
      else world.statuses[0] = status;
      if (events) world.events.push(...events);
      opts.onStatus?.(host, status);
    },
    async releaseHost({ host }) {
      const { world } = hw(host);
      world.calls.push('releaseHost');
      world.released++;
    },
    async startAgentSession({ host, command }) {
      const h = hw(host);
      h.world.calls.push(`startAgentSession:${command.type}`);
      const existing = h.world.sessions.find((x) => x.commandId === command.id);
      if (existing) return { bootId: existing.bootId };
      for (const old of h.world.sessions) if (old.state !== 'finished') old.state = 'invalidated';
      h.currentBoot = `boot-${++bootSeq}`;
      h.world.bootModes.push('agent');
      h.world.commands.push(command);
      h.world.sessions.push({ bootId: h.currentBoot, commandId: command.id, type: command.type, state: 'prepared', command, preparedAt: new Date().toISOString() });
      h.pending = { host, bootId: h.currentBoot, command };
      return { bootId: h.currentBoot };
    },
    async getAgentSession({ host, commandId }) {
      const { world } = hw(host);
      world.calls.push('getAgentSession');
      const s = commandId ? world.sessions.find((x) => x.commandId === commandId) : world.sessions[world.sessions.length - 1];
      return s && JSON.parse(JSON.stringify(s));
    },
    async claimBootMac({ host, mac }) {
      const { world } = hw(host);
      world.calls.push('claimBootMac');
      world.claimedMac = mac;
    },
    async forgetHostBoot({ host }) {
      const h = hw(host);
      h.world.calls.push('forgetHostBoot');
      h.world.claimedMac = undefined;
      h.pending = undefined;
      for (const s of h.world.sessions) if (s.state !== 'finished') s.state = 'invalidated';
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
