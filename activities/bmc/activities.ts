import { ApplicationFailure } from '@temporalio/common';
import { FAILURE } from '../../api/errors';
import { Context } from '@temporalio/activity';
import type { Logger } from 'pino';
import type { BmcInventory, BootTarget, PowerState } from '../../api/bmc';
import type { HostRef, HostSpec } from '../../api/host';
import type { BmcCredentialsReader } from '../k8s/bmc-credentials';
import { parseBmcAddress } from './address';
import { connectBmc as defaultConnect } from './driver';
import { BmcFailures } from './errors';
import type { IronflowBmcDriver } from './types';

/** What every BMC activity gets: which host, and its `spec.bmc` (a Secret name, never a password). */
export interface BmcActivityInput {
  host: HostRef;
  bmc: HostSpec['bmc'];
}

export interface BmcActivityDeps {
  credentials: BmcCredentialsReader;
  connect?: typeof defaultConnect;
  log: Logger;
  /** PEM CAs the worker trusts for BMC HTTPS, beside the system CAs. */
  caBundle?: string;
  /** Per request (HTTP exchange or ipmitool run). Default 15 s. */
  requestTimeoutMs?: number;
  /** How long a power/boot change may take to show in a read-back. Default 60 s (sushy's fake driver: up to 11 s). */
  verifyTimeoutMs?: number;
  /** Interval between read-backs. Default 1 s. */
  pollIntervalMs?: number;
  /**
   * Refuse BMCs outside loopback. The embedded plane (virtual lab) sets it,
   * so a BareMetalHost written for real hardware (e.g. Metal3's example with
   * ipmi://192.168.122.1) never makes a development machine send packets
   * to a network it does not own.
   */
  loopbackOnly?: boolean;
  /** How long a graceful shutdown may take before a hard power-off. Default 30 s. */
  gracefulOffTimeoutMs?: number;
}

export interface SetPowerResult {
  poweredOn: boolean;
  /** False when the server was already in the requested state (nothing was sent). */
  changed: boolean;
  /** How long the read-back took to show the new state. */
  verifiedAfterMs: number;
}

/** Heartbeat and sleep through the activity context when there is one (tests may call activities directly). */
function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/**
 * BMC activities for the hardware task queue. Each resolves the credentials
 * Secret at call time, opens one driver, and closes it (ends the Redfish
 * session) in `finally`, so a retry after a crash starts clean. Each reads
 * before it acts, so retrying one that already took effect does nothing.
 */
export function createBmcActivities(deps: BmcActivityDeps) {
  const connect = deps.connect ?? defaultConnect;
  const verifyTimeoutMs = deps.verifyTimeoutMs ?? 60_000;
  const pollIntervalMs = deps.pollIntervalMs ?? 1_000;
  const gracefulOffTimeoutMs = deps.gracefulOffTimeoutMs ?? 30_000;

  async function withDriver<T>(input: BmcActivityInput, what: string, fn: (d: IronflowBmcDriver, f: BmcFailures) => Promise<T>): Promise<T> {
    const endpoint = parseBmcAddress(input.bmc.address);
    const secretRef = { namespace: input.host.namespace, name: input.bmc.credentialsName };
    const log = deps.log.child({ host: `${input.host.namespace}/${input.host.name}`, bmc: input.bmc.address, activity: what });
    const credentials = await deps.credentials.read(secretRef.namespace, secretRef.name);
    // After the Secret: a host with bad credentials gets that (more useful) error first.
    if (deps.loopbackOnly && !/^(127\.\d+\.\d+\.\d+|::1|\[::1\]|localhost)$/.test(endpoint.host)) {
      throw ApplicationFailure.create({
        type: FAILURE.BmcAddressInvalid,
        nonRetryable: true,
        message: `BMC ${input.bmc.address} is outside loopback, and this plane runs with the virtual lab only (IRONFLOW_BMC_LOOPBACK_ONLY): point the host at a lab BMC, or run against a real management cluster for real hardware`,
      });
    }
    const driver = connect({
      endpoint,
      credentials,
      secretRef,
      disableCertificateVerification: input.bmc.disableCertificateVerification,
      caBundle: deps.caBundle,
      timeoutMs: deps.requestTimeoutMs,
    });
    const started = Date.now();
    try {
      const out = await fn(driver, new BmcFailures(endpoint, secretRef));
      log.debug({ ms: Date.now() - started }, `${what} done`);
      return out;
    } catch (err) {
      log.warn({ ms: Date.now() - started, err: { type: (err as { type?: string }).type, message: (err as Error).message } }, `${what} failed`);
      throw err;
    } finally {
      await driver.close();
    }
  }

  /**
   * Reads the power state until it equals `want` or `limitMs` passes,
   * heartbeating each round. Returns the ms it took, or undefined.
   */
  async function waitForPower(d: IronflowBmcDriver, want: PowerState, limitMs: number, phase: string): Promise<number | undefined> {
    const ctx = activityContext();
    const started = Date.now();
    // Bounded: at most limitMs / pollIntervalMs + 1 reads.
    for (;;) {
      if ((await d.getPowerState()) === want) return Date.now() - started;
      const elapsed = Date.now() - started;
      if (elapsed >= limitMs) return undefined;
      ctx?.heartbeat({ phase, want, elapsedMs: elapsed });
      const pause = Math.min(pollIntervalMs, limitMs - elapsed);
      if (ctx) await ctx.sleep(pause);
      else await new Promise((r) => setTimeout(r, pause));
    }
  }

  return {
    /** Registration: the BMC answers with these credentials. Reads power state and, where offered, make and model. */
    async bmcCheckAccess(input: BmcActivityInput): Promise<{ poweredOn: boolean; manufacturer?: string; model?: string }> {
      return withDriver(input, 'bmcCheckAccess', async (d) => {
        const power = await d.getPowerState();
        const inv = await d.getInventory();
        return { poweredOn: power === 'on', ...(inv.manufacturer ? { manufacturer: inv.manufacturer } : {}), ...(inv.model ? { model: inv.model } : {}) };
      });
    },

    /**
     * Powers the server on or off and returns once a read shows it. Safe to
     * retry: it reads first and sends nothing when already there. With
     * `graceful`, an off first asks the OS to shut down and forces it off
     * after `gracefulOffTimeoutMs`.
     */
    async bmcSetPower(input: BmcActivityInput & { state: PowerState; graceful?: boolean }): Promise<SetPowerResult> {
      return withDriver(input, `bmcSetPower(${input.state})`, async (d, f) => {
        if ((await d.getPowerState()) === input.state) return { poweredOn: input.state === 'on', changed: false, verifiedAfterMs: 0 };
        if (input.state === 'off' && input.graceful && d.softPowerOff) {
          await d.softPowerOff();
          const took = await waitForPower(d, 'off', gracefulOffTimeoutMs, 'graceful-off');
          if (took !== undefined) return { poweredOn: false, changed: true, verifiedAfterMs: took };
        }
        await d.setPowerState(input.state);
        const took = await waitForPower(d, input.state, verifyTimeoutMs, `power-${input.state}`);
        if (took === undefined) {
          throw f.notApplied(`accepted power ${input.state} but still reads the old state after ${Math.round(verifyTimeoutMs / 1000)} s`);
        }
        return { poweredOn: input.state === 'on', changed: true, verifiedAfterMs: took };
      });
    },

    /**
     * Restarts the server so it boots what was just prepared (PXE into the
     * agent, or the disk). A server found off is simply powered on. A hard
     * reset leaves no state to read back, so only "on" is verified.
     */
    async bmcReboot(input: BmcActivityInput): Promise<void> {
      return withDriver(input, 'bmcReboot', async (d, f) => {
        if ((await d.getPowerState()) === 'off') await d.setPowerState('on');
        else await d.reset();
        if ((await waitForPower(d, 'on', verifyTimeoutMs, 'reboot')) === undefined) {
          throw f.notApplied(`accepted a reboot but does not read back as on after ${Math.round(verifyTimeoutMs / 1000)} s`);
        }
      });
    },

    /** Sets the next boot device and reads it back. `persistent: false` = next boot only. */
    async bmcSetNextBoot(input: BmcActivityInput & { target: BootTarget; persistent: boolean }): Promise<{ target: BootTarget; persistent: boolean; verified: boolean }> {
      return withDriver(input, `bmcSetNextBoot(${input.target})`, async (d, f) => {
        // Drivers that cannot read persistence back (ipmi_sim, many IPMI BMCs) are verified on the target only.
        // A read-back that is *more* persistent than asked is accepted: the next boot still goes
        // where asked, and Ironflow sets the device again before every boot it cares about
        // (sushy-emulator, like libvirt, always reports Continuous).
        const checksPersistence = (d as { reportsBootPersistence?: boolean }).reportsBootPersistence !== false;
        const matches = (b: { target: string; persistent: boolean }) =>
          b.target === input.target && (!checksPersistence || !input.persistent || b.persistent);
        await d.setNextBoot(input.target, { persistent: input.persistent });
        const back = await d.getNextBoot();
        if (!matches(back)) {
          throw f.notApplied(`set next boot to ${input.target} (${input.persistent ? 'persistent' : 'once'}) but reads back ${back.target} (${back.persistent ? 'persistent' : 'once'})`);
        }
        return { target: input.target, persistent: input.persistent, verified: true };
      });
    },

    /** Out-of-band inventory, as far as the BMC tells it (IPMI: make/model/serial only). */
    async bmcGetInventory(input: BmcActivityInput): Promise<BmcInventory> {
      return withDriver(input, 'bmcGetInventory', (d) => d.getInventory());
    },
  };
}
export type BmcActivities = ReturnType<typeof createBmcActivities>;
