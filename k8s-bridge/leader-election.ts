/**
 * Leader election on a coordination.k8s.io/v1 Lease, the way client-go's
 * leaderelection does it: the holder renews renewTime every retry period; a
 * candidate takes the Lease only when it has seen the same record unchanged
 * for leaseDuration by its own clock (no clock comparison across machines);
 * every write carries the resourceVersion read, so two candidates can never
 * both win. The leader releases the Lease on stop so a standby takes over at
 * once instead of after the lease duration.
 *
 * The Lease is written through the generic API so renewTime keeps the
 * microsecond form the server expects (RFC 3339 with 6 fraction digits).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { makeKeepAliveApiClient } from './kube-client';

export interface LeaderElectionOptions {
  /** Namespace of the Lease. */
  namespace: string;
  /** Name of the Lease; every bridge of one deployment uses the same. */
  name?: string;
  leaseDurationSeconds?: number;
  /** The leader gives up if it could not renew for this long (less than the lease duration). */
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}
interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec?: LeaseSpec;
}

const LEASES = { group: 'coordination.k8s.io', version: 'v1', plural: 'leases' };
const microTime = (d = new Date()) => d.toISOString().replace(/Z$/, '000Z');
const statusOf = (err: unknown): number | undefined => (err as { code?: number }).code;

export class LeaderElector {
  private leading = false;
  private stopped = false;
  private readonly api: CustomObjectsApi;
  private readonly name: string;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private observed: { record: string; at: number } | undefined;
  private loop: Promise<void> | undefined;
  private readonly wake = new AbortController();
  private resolveFirst!: (leader: boolean) => void;
  /** Resolves after the first attempt: true if this process became the leader. */
  readonly firstDecision = new Promise<boolean>((r) => (this.resolveFirst = r));

  constructor(
    kc: KubeConfig,
    private readonly identity: string,
    private readonly opts: LeaderElectionOptions,
    private readonly callbacks: { onStartedLeading(): Promise<void>; onStoppedLeading(): Promise<void> },
    private readonly log: Logger,
  ) {
    this.api = makeKeepAliveApiClient(kc, CustomObjectsApi);
    this.name = opts.name ?? 'ironflow-k8s-bridge';
    this.leaseDurationMs = (opts.leaseDurationSeconds ?? 15) * 1000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? Math.floor((this.leaseDurationMs * 2) / 3);
    this.retryPeriodMs = opts.retryPeriodMs ?? Math.max(200, Math.floor(this.leaseDurationMs / 7.5));
  }

  isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stops campaigning; the leader first stops acting, then releases the Lease. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake.abort();
    await this.loop;
    if (this.leading) {
      this.leading = false;
      await this.callbacks.onStoppedLeading();
      await this.release();
    }
  }

  private async run(): Promise<void> {
    let lastRenew = 0;
    let first = true;
    while (!this.stopped) {
      const ok = await this.tryAcquireOrRenew().catch((err: unknown) => {
        this.log.warn({ lease: `${this.opts.namespace}/${this.name}`, err: (err as Error).message.split('\n')[0] }, 'lease read/write failed');
        return false;
      });
      if (this.stopped) break;
      if (ok) {
        lastRenew = Date.now();
        if (!this.leading) {
          this.leading = true;
          this.log.info({ lease: `${this.opts.namespace}/${this.name}`, identity: this.identity }, 'became leader');
          await this.callbacks.onStartedLeading();
        }
      } else if (this.leading && Date.now() - lastRenew > this.renewDeadlineMs) {
        this.leading = false;
        this.log.warn({ lease: `${this.opts.namespace}/${this.name}`, identity: this.identity }, 'lost leadership (could not renew the Lease in time); stopping');
        await this.callbacks.onStoppedLeading();
      }
      if (first) {
        first = false;
        this.resolveFirst(this.leading);
      }
      await sleep(this.retryPeriodMs, undefined, { signal: this.wake.signal }).catch(() => undefined);
    }
    if (first) this.resolveFirst(false);
  }

  private async read(): Promise<Lease | undefined> {
    try {
      return (await this.api.getNamespacedCustomObject({ ...LEASES, namespace: this.opts.namespace, name: this.name })) as Lease;
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  }

  private async write(lease: Lease, create: boolean): Promise<boolean> {
    try {
      if (create) await this.api.createNamespacedCustomObject({ ...LEASES, namespace: this.opts.namespace, body: lease });
      else await this.api.replaceNamespacedCustomObject({ ...LEASES, namespace: this.opts.namespace, name: this.name, body: lease });
      return true;
    } catch (err) {
      if (statusOf(err) === 409) return false; // someone else wrote first: not ours this round
      throw err;
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = microTime();
    const leaseDurationSeconds = Math.round(this.leaseDurationMs / 1000);
    const current = await this.read();
    if (!current) {
      const spec: LeaseSpec = { holderIdentity: this.identity, leaseDurationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 };
      return this.write({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.name, namespace: this.opts.namespace }, spec }, true);
    }
    const spec = current.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const record = `${holder}|${spec.renewTime ?? ''}|${spec.leaseDurationSeconds ?? ''}`;
    if (this.observed?.record !== record) this.observed = { record, at: Date.now() };
    if (holder !== '' && holder !== this.identity) {
      const duration = (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
      if (this.observed.at + duration > Date.now()) return false; // held, and renewed recently as far as we saw
    }
    const next: LeaseSpec = {
      holderIdentity: this.identity,
      leaseDurationSeconds,
      acquireTime: holder === this.identity ? (spec.acquireTime ?? now) : now,
      renewTime: now,
      leaseTransitions: (spec.leaseTransitions ?? 0) + (holder === this.identity ? 0 : 1),
    };
    return this.write({ ...current, spec: next }, false);
  }

  private async release(): Promise<void> {
    try {
      const current = await this.read();
      if (!current || current.spec?.holderIdentity !== this.identity) return;
      const now = microTime();
      await this.write({ ...current, spec: { ...current.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: now, acquireTime: now } }, false);
    } catch (err) {
      this.log.warn({ lease: `${this.opts.namespace}/${this.name}`, err: (err as Error).message.split('\n')[0] }, 'could not release the Lease; a standby takes over after the lease duration');
    }
  }
}
