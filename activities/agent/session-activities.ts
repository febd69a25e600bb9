/**
 * The host workflow's agent-session activities (api/host-activities.ts
 * HostAgentSessionActivities) over the plane's durable session store:
 * startAgentSession, getAgentSession, claimBootMac, forgetHostBoot, and the
 * transitional sendAgentCommand (a session on a boot prepareBoot made).
 *
 * startAgentSession does the checking a session needs before any agent sees
 * it: bounds of everything that reaches the agent's shell
 * (./command-bounds.ts), user data only from the host's own namespace (the
 * Secret is read once to prove it is there, then dropped: its bytes are read
 * again when the agent fetches them), and the evidence a result must carry
 * (./evidence.ts: verify regions and what they must hash to).
 *
 * User data never enters a return value, a log line or the store's file.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { AgentCommand, AgentSessionView, ExpectedDisk } from '../../api/agent';
import { FAILURE } from '../../api/errors';
import type { HostRef } from '../../api/host';
import type { HostAgentSessionActivities, HostActivities } from '../../api/host-activities';
import { normalizeMac } from '../../api/pxe';
import { checkCommand, checkExpectedDisks, CommandRefused } from './command-bounds';
import { chooseEraseRegions, type Random, zeroSampleSha256 } from './evidence';
import { type ImageSource, ImageUnreadable } from './image-evidence';
import type { ExpectedEvidence } from './session-state';
import { BootRefused, type SessionStore, type StartSessionSpec } from './session-store';

export interface SessionActivityLog {
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
}

export interface SessionActivityDeps {
  sessions: SessionStore;
  images: ImageSource;
  /** Reads the user data Secret (key `userData` or `value`); its errors name the Secret, never the content. */
  userData: (namespace: string, secretName: string) => Promise<Buffer>;
  log: SessionActivityLog;
  random?: Random;
}

const who = (h: HostRef) => `${h.namespace}/${h.name}`;

/** Heartbeats when running as an activity (reading a remote image can take a while); a no-op in plain calls. */
function heartbeat(): void {
  try {
    Context.current().heartbeat();
  } catch {
    // not inside an activity
  }
}

function refusal(host: HostRef, err: unknown): never {
  if (err instanceof CommandRefused) {
    throw ApplicationFailure.create({ type: FAILURE.SpecInvalid, nonRetryable: true, message: `BareMetalHost ${who(host)}: ${err.message}` });
  }
  if (err instanceof BootRefused) {
    throw ApplicationFailure.create({
      type: err.code === 'mac-conflict' ? FAILURE.PxeMacConflict : FAILURE.AgentTimeout,
      nonRetryable: err.code === 'mac-conflict',
      message: err.message,
    });
  }
  if (err instanceof ImageUnreadable) throw ApplicationFailure.create({ type: FAILURE.ImageInvalid, nonRetryable: false, message: err.message });
  throw err;
}

function checkedMac(host: HostRef, mac: string): string {
  try {
    return normalizeMac(mac);
  } catch (err) {
    throw ApplicationFailure.create({ type: FAILURE.SpecInvalid, nonRetryable: true, message: `BareMetalHost ${who(host)} spec.bootMACAddress: ${(err as Error).message}` });
  }
}

export function createSessionActivities(deps: SessionActivityDeps) {
  const { sessions, log } = deps;

  /** User data reference, from the host's own namespace only; the Secret must exist and be readable. */
  async function userDataRef(host: HostRef, command: AgentCommand, ref: { name: string; namespace?: string } | undefined): Promise<{ namespace: string; name: string } | undefined> {
    if (command.type !== 'deploy' || !command.hasUserData) return undefined;
    if (!ref?.name) {
      throw ApplicationFailure.create({ type: FAILURE.UserDataMissing, nonRetryable: true, message: `deploy command ${command.id} for ${who(host)} says hasUserData but names no user data Secret` });
    }
    if (ref.namespace !== undefined && ref.namespace !== '' && ref.namespace !== host.namespace) {
      throw ApplicationFailure.create({
        type: FAILURE.UserDataMissing, nonRetryable: true,
        message: `BareMetalHost ${who(host)}: spec.userData names a Secret in namespace "${ref.namespace}", but user data is read only from the host's own namespace "${host.namespace}": move Secret ${ref.name} to "${host.namespace}" (or drop spec.userData.namespace)`,
      });
    }
    // Proves the Secret is there now (a clear error at the start, not an agent's 404 later); the bytes are dropped.
    await deps.userData(host.namespace, ref.name);
    return { namespace: host.namespace, name: ref.name };
  }

  /** The command the agent gets (bounds checked, evidence regions set) and what its result must prove. */
  async function prepare(host: HostRef, raw: AgentCommand, inspected: ExpectedDisk[] | undefined): Promise<{ command: AgentCommand; expected: ExpectedEvidence; disks?: ExpectedDisk[] }> {
    const command = checkCommand(raw);
    // An erase without disks named: the ones this plane's last accepted inspection saw (the transitional
    // sendAgentCommand path names none).
    const named = inspected ?? (command.type === 'erase' ? sessions.lastInspectedDisks(host) : undefined);
    const disks = named === undefined ? undefined : checkExpectedDisks(named);
    if (command.type === 'erase') {
      if (!disks?.length) {
        throw new CommandRefused(`erase ${command.id} needs the inspected disks (status.hardware.disks): without them the plane cannot tell which disks the agent must erase and prove erased; inspect the host first`);
      }
      const verify: Record<string, { regions: Array<{ offset: number; length: number }> }> = {};
      const zeros: Record<string, string> = {};
      for (const d of disks) {
        verify[d.name] = chooseEraseRegions(d, command.mode, deps.random);
        zeros[d.name] = zeroSampleSha256(verify[d.name]!);
      }
      return { command: { ...command, disks, verify }, expected: { zeroSampleSha256: zeros }, disks };
    }
    if (command.type === 'deploy') {
      const ev = await deps.images.evidence(command.imageUrl, { onProgress: heartbeat });
      return {
        command: { ...command, verify: ev.verify },
        expected: { imageSampleSha256: ev.sampleSha256, ...(ev.imageBytes !== undefined ? { imageBytes: ev.imageBytes } : {}) },
        disks,
      };
    }
    return { command, expected: {}, disks };
  }

  async function spec(host: HostRef, raw: AgentCommand, userData: { name: string; namespace?: string } | undefined, inspected: ExpectedDisk[] | undefined): Promise<StartSessionSpec> {
    try {
      const p = await prepare(host, raw, inspected);
      const ud = await userDataRef(host, p.command, userData);
      return { command: p.command, expected: p.expected, ...(p.disks ? { inspectedDisks: p.disks } : {}), ...(ud ? { userData: ud } : {}) };
    } catch (err) {
      refusal(host, err);
    }
  }

  const activities: HostAgentSessionActivities & Pick<HostActivities, 'sendAgentCommand'> = {
    async startAgentSession(input) {
      const { host } = input;
      const mac = checkedMac(host, input.mac);
      // Idempotent by command id: a retried activity (or a replayed step) gets the same boot, even after the session ended.
      const known = sessions.findSession(host, input.command?.id);
      if (known) return { bootId: known.bootId };
      const s = await spec(host, input.command, input.userData, input.inspectedDisks);
      try {
        const { bootId, created } = await sessions.startSession(host, mac, s);
        log.info({ host: who(host), mac, bootId, commandId: s.command.id, type: s.command.type, created }, 'agent session started');
        return { bootId };
      } catch (err) {
        refusal(host, err);
      }
    },

    /** The session of `commandId`; without one, the host's latest (current, else last ended): what a resuming run looks for. */
    async getAgentSession({ host, commandId }): Promise<AgentSessionView | undefined> {
      return sessions.view(host, commandId);
    },

    async claimBootMac({ host, mac }) {
      const m = checkedMac(host, mac);
      try {
        await sessions.claim(host, m);
      } catch (err) {
        refusal(host, err);
      }
    },

    async forgetHostBoot({ host }) {
      const { droppedReports } = await sessions.forgetHost(host);
      log.info({ host: who(host), droppedReports }, 'host boots, sessions and MAC claims forgotten');
    },

    async sendAgentCommand(input) {
      const { host, bootId } = input;
      const s = await spec(host, input.command, input.userData, input.inspectedDisks);
      try {
        const result = await sessions.attachSession(host, bootId, s);
        log.info({ host: who(host), bootId, commandId: s.command.id, type: s.command.type, result }, 'agent command queued');
      } catch (err) {
        refusal(host, err);
      }
    },
  };
  return activities;
}
export type SessionActivities = ReturnType<typeof createSessionActivities>;
