/**
 * Temporal activities the host workflow uses to say what a machine boots
 * next, over the plane's durable session store
 * (activities/agent/session-store.ts), which the HTTP server reads when the
 * machine asks for its script. No secrets: a boot id is an identifier; an
 * agent boot's token is minted when its script is served.
 *
 * prepareBoot is for modes 'disk' and 'none' (and 'agent' for the
 * transitional sendAgentCommand); an agent boot of its own is
 * startAgentSession (activities/agent/session-activities.ts).
 */
import { ApplicationFailure } from '@temporalio/common';
import type { Logger } from 'pino';
import { FAILURE } from '../../api/errors';
import type { HostRef } from '../../api/host';
import { normalizeMac, type BootMode } from '../../api/pxe';
import type { DiscoveredMac } from '../agent/session-state';
import { BootRefused, type SessionStore } from '../agent/session-store';
import { checkKernelArgs } from './ipxe-script';

export interface PrepareBootInput {
  host: HostRef;
  mac: string;
  mode: BootMode;
  kernelArgs?: string[];
  /** Issue a new boot id even if the same host+mode is already pending (e.g. after a failed boot). */
  renew?: boolean;
}

export interface PxeActivityDeps {
  sessions: SessionStore;
  log: Logger;
}

function invalid(host: HostRef, what: string, err: unknown): never {
  throw ApplicationFailure.create({ type: FAILURE.SpecInvalid, nonRetryable: true, message: `BareMetalHost ${host.namespace}/${host.name} ${what}: ${(err as Error).message}` });
}

function conflict(err: unknown): never {
  if (err instanceof BootRefused) throw ApplicationFailure.create({ type: FAILURE.PxeMacConflict, nonRetryable: true, message: err.message });
  throw err;
}

export function createPxeActivities(deps: PxeActivityDeps) {
  const { sessions, log } = deps;

  const checkedMac = (host: HostRef, mac: string): string => {
    try {
      return normalizeMac(mac);
    } catch (err) {
      invalid(host, 'spec.bootMACAddress', err);
    }
  };

  return {
    /**
     * Makes the next PXE boot of `mac` boot `mode`. Safe to call again (an
     * activity retry, a workflow replaying a step): the same host+mode while
     * the boot stands returns the same bootId, unless `renew`.
     */
    async prepareBoot(input: PrepareBootInput): Promise<{ bootId: string }> {
      const mac = checkedMac(input.host, input.mac);
      let kernelArgs: string[];
      try {
        kernelArgs = checkKernelArgs(input.kernelArgs ?? []);
      } catch (err) {
        invalid(input.host, 'kernel arguments', err);
      }
      try {
        const { bootId, renewed } = await sessions.prepareBoot(input.host, mac, input.mode, { kernelArgs, renew: input.renew });
        log.info({ host: `${input.host.namespace}/${input.host.name}`, mac, mode: input.mode, bootId, renewed }, 'pxe boot prepared');
        return { bootId };
      } catch (err) {
        conflict(err);
      }
    },

    /** Forgets what `mac` should boot (idempotent). Refuses to clear another host's boot. */
    async clearBoot(input: { host: HostRef; mac: string }): Promise<{ cleared: boolean }> {
      const mac = checkedMac(input.host, input.mac);
      try {
        const cleared = await sessions.clearBoot(input.host, mac);
        if (cleared) log.info({ host: `${input.host.namespace}/${input.host.name}`, mac }, 'pxe boot cleared');
        return { cleared };
      } catch (err) {
        conflict(err);
      }
    },

    /** Unknown MACs seen on the provisioning network (HTTP or DHCP), most recent first. */
    async listDiscovered(): Promise<DiscoveredMac[]> {
      return sessions.discovered();
    },
  };
}
export type PxeActivities = ReturnType<typeof createPxeActivities>;
