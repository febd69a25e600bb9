/**
 * What each known MAC should boot next, and which unknown MACs were seen.
 *
 * State is JSON-plain (plain objects keyed by normalised MAC), so it can be
 * written to a file as is and read back after a restart. Writes go to a
 * temporary file and are renamed over the old one, one at a time, so a crash
 * leaves either the old or the new state, never half of one.
 *
 * Discovery follows Sidero: a MAC nobody registered is recorded (first/last
 * seen, source IP, count) and answered with 404 / "exit", so the firmware
 * falls through to its next boot device. It is never booted into anything,
 * not even an inspect-only agent: an unknown machine on the provisioning
 * network may be someone's running server, and running our code on it is not
 * ours to decide. An operator registers it (a BareMetalHost with that
 * bootMACAddress) and the next PXE boot gets the agent.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { HostRef } from '../../api/host';
import { normalizeMac, type BootMode } from '../../api/pxe';

export interface BootEntry {
  /** Normalised: lower case, ':' separated. */
  mac: string;
  host: HostRef;
  mode: BootMode;
  /** Issued by prepareBoot; the agent gets it on its command line. */
  bootId: string;
  /** Extra kernel arguments for mode 'agent' (checked by ipxe-script.ts when rendered). */
  kernelArgs: string[];
  preparedAt: string;
  /** Last time the per-MAC script was served (the boot is under way). */
  lastServedAt?: string;
}

export type DiscoverySource = 'http' | 'dhcp' | 'tftp';

export interface DiscoveredMac {
  mac: string;
  firstSeen: string;
  lastSeen: string;
  /** Last known address of the machine (absent until a packet carried one, e.g. a DHCPDISCOVER has none). */
  sourceIp?: string;
  source: DiscoverySource;
  count: number;
}

export interface BootRegistryState {
  version: 1;
  entries: Record<string, BootEntry>;
  discovered: Record<string, DiscoveredMac>;
}

export interface BootRegistryOptions {
  /** JSON file kept in step with the state; absent = memory only. */
  file?: string;
  /** Bound on the discovery list: a flood of spoofed MACs must not grow memory without end. */
  maxDiscovered?: number;
  now?: () => Date;
}

const emptyState = (): BootRegistryState => ({ version: 1, entries: {}, discovered: {} });

export class BootRegistry {
  private state: BootRegistryState;
  private writing: Promise<void> = Promise.resolve();
  private readonly maxDiscovered: number;
  private readonly now: () => Date;

  private constructor(
    private readonly opts: BootRegistryOptions,
    state: BootRegistryState,
  ) {
    this.state = state;
    this.maxDiscovered = opts.maxDiscovered ?? 1024;
    this.now = opts.now ?? (() => new Date());
  }

  /** Loads the file if it exists (a missing file is an empty registry). */
  static async open(opts: BootRegistryOptions = {}): Promise<BootRegistry> {
    if (!opts.file) return new BootRegistry(opts, emptyState());
    let text: string;
    try {
      text = await fs.readFile(opts.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new BootRegistry(opts, emptyState());
      throw err;
    }
    let parsed: BootRegistryState;
    try {
      parsed = JSON.parse(text) as BootRegistryState;
    } catch (err) {
      throw new Error(`boot registry file ${opts.file} is not valid JSON (${(err as Error).message}): fix or remove it`);
    }
    if (parsed?.version !== 1 || typeof parsed.entries !== 'object' || typeof parsed.discovered !== 'object') {
      throw new Error(`boot registry file ${opts.file} is not a version 1 registry: fix or remove it`);
    }
    return new BootRegistry(opts, parsed);
  }

  get(mac: string): BootEntry | undefined {
    const e = this.state.entries[normalizeMac(mac)];
    return e && structuredClone(e);
  }

  /** Entries of one host (a host may PXE-boot from more than one NIC). */
  byHost(host: HostRef): BootEntry[] {
    return Object.values(this.state.entries)
      .filter((e) => e.host.namespace === host.namespace && e.host.name === host.name)
      .map((e) => structuredClone(e));
  }

  async set(entry: BootEntry): Promise<void> {
    const mac = normalizeMac(entry.mac);
    this.state.entries[mac] = structuredClone({ ...entry, mac });
    // A MAC that is now registered is no longer "unknown".
    delete this.state.discovered[mac];
    await this.persist();
  }

  async remove(mac: string): Promise<boolean> {
    const key = normalizeMac(mac);
    if (!this.state.entries[key]) return false;
    delete this.state.entries[key];
    await this.persist();
    return true;
  }

  /** Notes that the per-MAC script was served; returns the entry, or undefined for an unknown MAC. */
  async markServed(mac: string): Promise<BootEntry | undefined> {
    const e = this.state.entries[normalizeMac(mac)];
    if (!e) return undefined;
    e.lastServedAt = this.now().toISOString();
    await this.persist();
    return structuredClone(e);
  }

  /** Records an unknown MAC; registered MACs are ignored. */
  async recordUnknown(seen: { mac: string; sourceIp?: string; source: DiscoverySource }): Promise<DiscoveredMac | undefined> {
    const mac = normalizeMac(seen.mac);
    if (this.state.entries[mac]) return undefined;
    const at = this.now().toISOString();
    const prev = this.state.discovered[mac];
    const rec: DiscoveredMac = prev
      ? { ...prev, lastSeen: at, sourceIp: seen.sourceIp ?? prev.sourceIp, source: seen.source, count: prev.count + 1 }
      : { mac, firstSeen: at, lastSeen: at, sourceIp: seen.sourceIp, source: seen.source, count: 1 };
    this.state.discovered[mac] = rec;
    this.evictOldestDiscovered();
    await this.persist();
    return structuredClone(rec);
  }

  /** Unknown MACs, most recently seen first. */
  discovered(): DiscoveredMac[] {
    return Object.values(this.state.discovered)
      .map((d) => structuredClone(d))
      .sort((a, b) => b.lastSeen.localeCompare(a.lastSeen));
  }

  /** A copy of the whole state (JSON-plain). */
  snapshot(): BootRegistryState {
    return structuredClone(this.state);
  }

  /** Resolves when every write so far has reached the file. */
  flush(): Promise<void> {
    return this.writing;
  }

  private evictOldestDiscovered(): void {
    const all = Object.values(this.state.discovered);
    if (all.length <= this.maxDiscovered) return;
    // Example: max 2, seen a@1 b@2 c@3 -> a (oldest lastSeen) goes.
    all.sort((a, b) => a.lastSeen.localeCompare(b.lastSeen));
    for (const d of all.slice(0, all.length - this.maxDiscovered)) delete this.state.discovered[d.mac];
  }

  private persist(): Promise<void> {
    const file = this.opts.file;
    if (!file) return Promise.resolve();
    // Serialised: each write starts after the previous one, and writes the state as of its start.
    const next = this.writing
      .catch(() => undefined)
      .then(async () => {
        await fs.mkdir(path.dirname(file), { recursive: true });
        const tmp = `${file}.${process.pid}.tmp`;
        await fs.writeFile(tmp, JSON.stringify(this.state, null, 2) + '\n', { mode: 0o600 });
        await fs.rename(tmp, file);
      });
    this.writing = next;
    return next;
  }
}
