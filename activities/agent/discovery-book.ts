/**
 * Unknown MACs seen on the provisioning network (Sidero-style discovery),
 * kept in the session store's state. Bounded twice, because anyone on that
 * network can send PXE requests from made-up MACs:
 *
 * - a cap on records (default 256): once full, a NEW unknown MAC is not
 *   stored, only counted (records are never evicted to make room, or a flood
 *   would cycle through them and every one would become a Server object);
 *   records not seen for `ttlMs` (default 24 h) expire and free their place;
 * - a rate limit on NEW MACs (default burst 32, then 1 per second): beyond
 *   it a new MAC is counted, not stored, even below the cap.
 *
 * A MAC already recorded is refreshed (last seen, count) at no cost to
 * either bound. Registered MACs (a host's boot or claim) are never recorded.
 */
import { normalizeMac } from '../../api/pxe';
import type { DiscoveredMac, DiscoverySource, StoreState } from './session-state';
import { TokenBucket } from './token-bucket';

export interface DiscoveryLimits {
  /** Most unknown MACs kept at once. */
  maxRecords: number;
  /** New unknown MACs accepted at once, then `newPerSecond`. */
  burst: number;
  newPerSecond: number;
  /** A record not seen for this long expires. */
  ttlMs: number;
}

export const DEFAULT_DISCOVERY_LIMITS: DiscoveryLimits = { maxRecords: 256, burst: 32, newPerSecond: 1, ttlMs: 24 * 3600_000 };

export type DiscoveryOutcome = 'recorded' | 'refreshed' | 'registered' | 'dropped-cap' | 'dropped-rate';

export class DiscoveryBook {
  private readonly bucket: TokenBucket;

  constructor(
    private readonly state: () => StoreState,
    readonly limits: DiscoveryLimits,
    private readonly now: () => Date,
  ) {
    this.bucket = new TokenBucket(limits.burst, limits.newPerSecond, () => now().getTime());
  }

  /** Records a sighting; `registered(mac)` says whether the MAC belongs to a host. */
  record(seen: { mac: string; sourceIp?: string; source: DiscoverySource }, registered: (mac: string) => boolean): { outcome: DiscoveryOutcome; record?: DiscoveredMac } {
    const mac = normalizeMac(seen.mac);
    if (registered(mac)) return { outcome: 'registered' };
    const st = this.state();
    const at = this.now().toISOString();
    const prev = st.discovered[mac];
    if (prev) {
      const rec: DiscoveredMac = { ...prev, lastSeen: at, sourceIp: seen.sourceIp ?? prev.sourceIp, source: seen.source, count: prev.count + 1 };
      st.discovered[mac] = rec;
      return { outcome: 'refreshed', record: structuredClone(rec) };
    }
    this.expire();
    if (Object.keys(st.discovered).length >= this.limits.maxRecords) {
      st.discoveryDropped.cap++;
      return { outcome: 'dropped-cap' };
    }
    if (!this.bucket.take()) {
      st.discoveryDropped.rate++;
      return { outcome: 'dropped-rate' };
    }
    const rec: DiscoveredMac = { mac, firstSeen: at, lastSeen: at, sourceIp: seen.sourceIp, source: seen.source, count: 1 };
    st.discovered[mac] = rec;
    return { outcome: 'recorded', record: structuredClone(rec) };
  }

  /** Unknown MACs, most recently seen first. */
  list(): DiscoveredMac[] {
    this.expire();
    return Object.values(this.state().discovered)
      .map((d) => structuredClone(d))
      .sort((a, b) => b.lastSeen.localeCompare(a.lastSeen));
  }

  forget(mac: string): void {
    delete this.state().discovered[mac];
  }

  /** Records kept, and sightings of new MACs not stored since the store was created. */
  stats(): { records: number; droppedCap: number; droppedRate: number } {
    const st = this.state();
    return { records: Object.keys(st.discovered).length, droppedCap: st.discoveryDropped.cap, droppedRate: st.discoveryDropped.rate };
  }

  private expire(): void {
    const st = this.state();
    const cutoff = new Date(this.now().getTime() - this.limits.ttlMs).toISOString();
    for (const [mac, d] of Object.entries(st.discovered)) if (d.lastSeen < cutoff) delete st.discovered[mac];
  }
}
