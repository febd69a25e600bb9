/**
 * Temporal activities the host workflow uses to say what a machine boots
 * next. They touch only the boot registry (memory + its JSON file); the HTTP
 * server reads the same registry when the machine asks for its script.
 * No secrets: a boot id is an identifier, the agent's token comes from the
 * agent API's lookup.
 */
import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import type { Logger } from 'pino';
import type { HostRef } from '../../api/host';
import { normalizeMac, type BootMode } from '../../api/pxe';
import type { BootRegistry, DiscoveredMac } from './boot-registry';
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
  registry: BootRegistry;
  log: Logger;
  newBootId?: () => string;
  now?: () => Date;
}

/** Failure type when one MAC is claimed by two hosts; a human must fix the inventory, so never retried. */
export const PXE_MAC_CONFLICT = 'PxeMacConflict';
/** Failure type for a MAC or kernel argument that cannot be used; never retried. */
export const PXE_INVALID_INPUT = 'PxeInvalidInput';

const sameHost = (a: HostRef, b: HostRef) => a.namespace === b.namespace && a.name === b.name;

export function createPxeActivities(deps: PxeActivityDeps) {
  const { registry, log } = deps;
  const newBootId = deps.newBootId ?? randomUUID;
  const now = deps.now ?? (() => new Date());

  function checkedMac(mac: string, host: HostRef): string {
    try {
      return normalizeMac(mac);
    } catch (err) {
      throw ApplicationFailure.create({
        type: PXE_INVALID_INPUT,
        nonRetryable: true,
        message: `BareMetalHost ${host.namespace}/${host.name} spec.bootMACAddress: ${(err as Error).message}`,
      });
    }
  }

  return {
    /**
     * Makes the next PXE boot of `mac` boot `mode`. Safe to call again (an
     * activity retry, a workflow replaying a step): the same host+mode while
     * the entry stands returns the same bootId, unless `renew`.
     */
    async prepareBoot(input: PrepareBootInput): Promise<{ bootId: string }> {
      const mac = checkedMac(input.mac, input.host);
      let kernelArgs: string[];
      try {
        kernelArgs = checkKernelArgs(input.kernelArgs ?? []);
      } catch (err) {
        throw ApplicationFailure.create({ type: PXE_INVALID_INPUT, nonRetryable: true, message: `${input.host.namespace}/${input.host.name}: ${(err as Error).message}` });
      }
      const existing = registry.get(mac);
      if (existing && !sameHost(existing.host, input.host)) {
        throw ApplicationFailure.create({
          type: PXE_MAC_CONFLICT,
          nonRetryable: true,
          message:
            `MAC ${mac} is registered for BareMetalHost ${existing.host.namespace}/${existing.host.name}, ` +
            `so ${input.host.namespace}/${input.host.name} cannot boot from it: fix spec.bootMACAddress of one of them`,
        });
      }
      const argsEqual = existing && JSON.stringify(existing.kernelArgs) === JSON.stringify(kernelArgs);
      if (existing && existing.mode === input.mode && argsEqual && !input.renew) {
        return { bootId: existing.bootId };
      }
      const bootId = newBootId();
      await registry.set({ mac, host: input.host, mode: input.mode, bootId, kernelArgs, preparedAt: now().toISOString() });
      log.info({ host: `${input.host.namespace}/${input.host.name}`, mac, mode: input.mode, bootId, renewed: Boolean(existing) }, 'pxe boot prepared');
      return { bootId };
    },

    /** Forgets what `mac` should boot (idempotent). Refuses to clear another host's entry. */
    async clearBoot(input: { host: HostRef; mac: string }): Promise<{ cleared: boolean }> {
      const mac = checkedMac(input.mac, input.host);
      const existing = registry.get(mac);
      if (!existing) return { cleared: false };
      if (!sameHost(existing.host, input.host)) {
        throw ApplicationFailure.create({
          type: PXE_MAC_CONFLICT,
          nonRetryable: true,
          message: `MAC ${mac} belongs to BareMetalHost ${existing.host.namespace}/${existing.host.name}, not ${input.host.namespace}/${input.host.name}: not cleared`,
        });
      }
      await registry.remove(mac);
      log.info({ host: `${input.host.namespace}/${input.host.name}`, mac }, 'pxe boot cleared');
      return { cleared: true };
    },

    /** Unknown MACs seen on the provisioning network (HTTP or DHCP), most recent first. */
    async listDiscovered(): Promise<DiscoveredMac[]> {
      return registry.discovered();
    },
  };
}
export type PxeActivities = ReturnType<typeof createPxeActivities>;
