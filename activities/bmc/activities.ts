import { ApplicationFailure } from '@temporalio/common';
import { FAILURE } from '../../api/errors';
import { Context } from '@temporalio/activity';
import type { Logger } from 'pino';
import type { BmcIdentity, BmcInventory, BootTarget, PowerState } from '../../api/bmc';
import { redactBmcAddress } from '../../api/bmc-address-redaction';
import type { HostRef, HostSpec } from '../../api/host';
import type { BmcPowerResult } from '../../api/host-activities';
import type { BmcCredentialsReader } from '../k8s/bmc-credentials';
import { parseBmcAddress } from './address';
import { connectBmc as defaultConnect } from './driver';
import { BmcFailures } from './errors';
import { credentialScrubber, scrubDeep } from './scrub';
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
  /** The ipmitool binary (default: `ipmitool` from PATH). */
  ipmitool?: string;
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
  /**
   * Heartbeat period of every BMC activity while it runs. Default 5 s: well
   * inside the host workflow's 30 s heartbeat timeout even when one request
   * to a slow BMC takes the whole request timeout.
   */
  heartbeatIntervalMs?: number;
}

/** What bmcSetPower reports (api/host-activities.ts), plus how long the read-back took. */
export interface SetPowerResult extends BmcPowerResult {
  /** How long the read-back took to show the new state. */
  verifiedAfterMs: number;
}

/** Default and bounds of bmcSetPower's `softTimeoutSeconds` (Ironic's soft_power_off_timeout is 600 s). */
export const SOFT_POWER_OFF_TIMEOUT_SECONDS = { default: 60, max: 600 } as const;

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
  const heartbeatIntervalMs = deps.heartbeatIntervalMs ?? 5_000;

  /**
   * The frame of every BMC activity: parse the address, read the Secret,
   * connect, heartbeat while `fn` runs, close. Whatever escapes `fn` is
   * rebuilt by {@link BmcFailures.sanitize} with the credential values
   * scrubbed, before it is logged or handed to Temporal (which would put
   * message and stack into the workflow history); results read from the BMC
   * are scrubbed too. The address is logged redacted.
   */
  async function withDriver<T>(input: BmcActivityInput, what: string, fn: (d: IronflowBmcDriver, f: BmcFailures, setPhase: (p: string) => void) => Promise<T>): Promise<T> {
    const endpoint = parseBmcAddress(input.bmc.address);
    const secretRef = { namespace: input.host.namespace, name: input.bmc.credentialsName };
    const log = deps.log.child({ host: `${input.host.namespace}/${input.host.name}`, bmc: redactBmcAddress(input.bmc.address), activity: what });
    const credentials = await deps.credentials.read(secretRef.namespace, secretRef.name);
    // After the Secret: a host with bad credentials gets that (more useful) error first.
    if (deps.loopbackOnly && !/^(127\.\d+\.\d+\.\d+|::1|\[::1\]|localhost)$/.test(endpoint.host)) {
      throw ApplicationFailure.create({
        type: FAILURE.BmcAddressInvalid,
        nonRetryable: true,
        message: `BMC ${endpoint.address} is outside loopback, and this plane runs with the virtual lab only (IRONFLOW_BMC_LOOPBACK_ONLY): point the host at a lab BMC, or run against a real management cluster for real hardware`,
      });
    }
    const failures = new BmcFailures(endpoint, secretRef, credentialScrubber(credentials));
    const driver = connect({
      endpoint,
      credentials,
      secretRef,
      disableCertificateVerification: input.bmc.disableCertificateVerification,
      caBundle: deps.caBundle,
      timeoutMs: deps.requestTimeoutMs,
      ipmitool: deps.ipmitool,
    });
    const ctx = activityContext();
    let phase = 'connecting';
    // A timer rather than a heartbeat per request: one request to a slow BMC
    // may take the whole request timeout, and a large inventory walk many.
    // A dead worker stops the timer too, so the heartbeat timeout still
    // catches it; a hung request is bounded by the request timeout.
    const started = Date.now();
    const beat = ctx ? setInterval(() => ctx.heartbeat({ activity: what, phase, elapsedMs: Date.now() - started }), heartbeatIntervalMs) : undefined;
    try {
      const out = scrubDeep(await fn(driver, failures, (p) => (phase = p)), failures.scrub);
      log.debug({ ms: Date.now() - started }, `${what} done`);
      return out;
    } catch (err) {
      // Cancellation is Temporal's own signal, not a BMC failure: pass it on untouched.
      if ((err as { name?: string })?.name === 'CancelledFailure') throw err;
      const safe = failures.sanitize(err);
      log.warn({ ms: Date.now() - started, err: { type: safe.type, message: safe.message } }, `${what} failed`);
      throw safe;
    } finally {
      if (beat) clearInterval(beat);
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
    /**
     * Registration: the credentials resolve and the BMC answers. Reads the
     * power state and who the server is (make, model, serial: one Redfish
     * GET of the system, or `mc info` + `fru print 0`), never the inventory
     * walk, which takes minutes on a large Redfish server.
     */
    async bmcCheckAccess(input: BmcActivityInput): Promise<{ poweredOn: boolean } & BmcIdentity> {
      return withDriver(input, 'bmcCheckAccess', async (d, _f, setPhase) => {
        setPhase('power state');
        const power = await d.getPowerState();
        setPhase('identity');
        return { poweredOn: power === 'on', ...(await d.getIdentity()) };
      });
    },

    /**
     * Powers the server on or off and returns once a read shows it. Safe to
     * retry: it reads first and sends nothing when already there. With
     * `soft`, an off first asks the OS to shut down (Redfish
     * GracefulShutdown, IPMI `chassis power soft`), waits up to
     * `softTimeoutSeconds` for the server to read off, then forces it off, as
     * Ironic's soft power off does; a BMC without a soft action goes
     * straight to the hard one. The result says which one did it.
     */
    async bmcSetPower(input: BmcActivityInput & { state: PowerState; soft?: boolean; softTimeoutSeconds?: number }): Promise<SetPowerResult> {
      return withDriver(input, `bmcSetPower(${input.state}${input.soft ? ', soft' : ''})`, async (d, f, setPhase) => {
        setPhase('read power');
        if ((await d.getPowerState()) === input.state) return { poweredOn: input.state === 'on', changed: false, method: 'none', verifiedAfterMs: 0 };
        let softOffFallback: string | undefined;
        if (input.state === 'off' && input.soft) {
          const seconds = input.softTimeoutSeconds ?? SOFT_POWER_OFF_TIMEOUT_SECONDS.default;
          if (!(seconds > 0 && seconds <= SOFT_POWER_OFF_TIMEOUT_SECONDS.max)) {
            throw ApplicationFailure.create({
              type: FAILURE.BmcUnsupported,
              nonRetryable: true,
              message: `bmcSetPower: softTimeoutSeconds must be more than 0 and at most ${SOFT_POWER_OFF_TIMEOUT_SECONDS.max}, got ${seconds}`,
            });
          }
          setPhase('soft power off');
          const accepted = await d.softPowerOff().then(
            () => true,
            (err: unknown) => {
              // Only a BMC without the action falls through to the hard off; anything else is this attempt's failure.
              if ((err as { type?: string }).type !== FAILURE.BmcUnsupported) throw err;
              softOffFallback = `the BMC has no soft power off (${(err as Error).message})`;
              return false;
            },
          );
          if (accepted) {
            const took = await waitForPower(d, 'off', seconds * 1000, 'soft-off');
            if (took !== undefined) return { poweredOn: false, changed: true, method: 'soft', verifiedAfterMs: took };
            softOffFallback = `the server did not shut down within ${seconds} s of a soft power off`;
          }
        }
        setPhase(`power ${input.state}`);
        await d.setPowerState(input.state);
        const took = await waitForPower(d, input.state, verifyTimeoutMs, `power-${input.state}`);
        if (took === undefined) {
          throw f.notApplied(`accepted power ${input.state} but still reads the old state after ${Math.round(verifyTimeoutMs / 1000)} s`);
        }
        return { poweredOn: input.state === 'on', changed: true, method: 'hard', verifiedAfterMs: took, ...(softOffFallback ? { softOffFallback } : {}) };
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
        const checksPersistence = d.reportsBootPersistence;
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
      return withDriver(input, 'bmcGetInventory', (d, _f, setPhase) => {
        setPhase('inventory walk');
        return d.getInventory();
      });
    },
  };
}
export type BmcActivities = ReturnType<typeof createBmcActivities>;
