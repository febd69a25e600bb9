import type { BmcEndpoint, BmcIdentity, BmcInventory, BootTarget, PowerState } from '../../api/bmc';
import type { BmcFailures } from './errors';
import type { IronflowBmcDriver } from './types';

/** A recorded driver call, in order, for assertions. */
export interface FixtureCall {
  method: string;
  args: unknown[];
}

/** What a failure knob throws: a function of the fixture's BmcFailures, so messages match the real drivers'. */
export type FixtureFailure = (f: BmcFailures) => Error;

/** The knobs of a {@link FixtureBmc}; change them between calls. */
export interface FixtureState {
  power: PowerState;
  nextBoot: { target: BootTarget | 'none' | 'other'; persistent: boolean };
  inventory: BmcInventory;
  /** Power actions take effect after this many further getPowerState reads (0 = at once; like sushy's fake delay). */
  powerLagReads: number;
  /** Power actions are accepted and never applied (LabFault power-stuck). */
  powerStuck: boolean;
  /** A soft power-off is accepted and ignored (an OS that does not react to ACPI), while hard actions work. */
  ignoresSoftOff: boolean;
  /** Queued failures per method name ('*' = any method): each call takes the next one. */
  failures: Record<string, FixtureFailure[]>;
  calls: FixtureCall[];
  closed: number;
}

/**
 * An in-memory BmcDriver for unit and workflow tests, in the manner of
 * Metal3's fixture provisioner: power and boot state live in `state`,
 * failures are queued per method, and every call is recorded.
 */
export class FixtureBmc implements IronflowBmcDriver {
  readonly reportsBootPersistence = true;
  readonly state: FixtureState;
  private pending?: { power: PowerState; readsLeft: number };

  constructor(
    readonly endpoint: BmcEndpoint,
    private readonly failures: BmcFailures,
    init: Partial<FixtureState> = {},
  ) {
    this.state = {
      power: 'off',
      nextBoot: { target: 'none', persistent: false },
      inventory: { manufacturer: 'Fixture', model: 'F1', nics: [], disks: [] },
      powerLagReads: 0,
      powerStuck: false,
      ignoresSoftOff: false,
      failures: {},
      calls: [],
      closed: 0,
      ...init,
    };
  }

  /** Queue `n` copies of a failure for `method` (or '*'). */
  failNext(method: string, failure: FixtureFailure, n = 1): this {
    (this.state.failures[method] ??= []).push(...Array.from({ length: n }, () => failure));
    return this;
  }

  async getPowerState(): Promise<PowerState> {
    this.enter('getPowerState');
    if (this.pending) {
      if (this.pending.readsLeft <= 0) {
        this.state.power = this.pending.power;
        this.pending = undefined;
      } else this.pending.readsLeft -= 1;
    }
    return this.state.power;
  }

  async setPowerState(state: PowerState): Promise<void> {
    this.enter('setPowerState', state);
    this.schedule(state);
  }

  async softPowerOff(): Promise<void> {
    this.enter('softPowerOff');
    if (!this.state.ignoresSoftOff) this.schedule('off');
  }

  async reset(): Promise<void> {
    this.enter('reset');
    if (!this.state.powerStuck) this.state.power = 'on';
  }

  async setNextBoot(target: BootTarget, opts: { persistent?: boolean } = {}): Promise<void> {
    this.enter('setNextBoot', target, opts);
    this.state.nextBoot = { target, persistent: opts.persistent ?? false };
  }

  async getNextBoot(): Promise<{ target: BootTarget | 'none' | 'other'; persistent: boolean }> {
    this.enter('getNextBoot');
    return { ...this.state.nextBoot };
  }

  async getIdentity(): Promise<BmcIdentity> {
    this.enter('getIdentity');
    const { manufacturer, model, serialNumber } = this.state.inventory;
    return { ...(manufacturer ? { manufacturer } : {}), ...(model ? { model } : {}), ...(serialNumber ? { serialNumber } : {}) };
  }

  async getInventory(): Promise<BmcInventory> {
    this.enter('getInventory');
    return structuredClone(this.state.inventory);
  }

  async close(): Promise<void> {
    this.state.calls.push({ method: 'close', args: [] });
    this.state.closed += 1;
  }

  private schedule(power: PowerState): void {
    if (this.state.powerStuck) return;
    if (this.state.powerLagReads === 0) this.state.power = power;
    else this.pending = { power, readsLeft: this.state.powerLagReads };
  }

  private enter(method: string, ...args: unknown[]): void {
    this.state.calls.push({ method, args });
    const queue = this.state.failures[method]?.length ? this.state.failures[method] : this.state.failures['*'];
    const next = queue?.shift();
    if (next) throw next(this.failures);
  }
}
