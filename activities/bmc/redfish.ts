import { dirname, join } from 'node:path';
import pino from 'pino';
import type * as RedfishClientModule from 'redfish-client';
import type { BmcEndpoint, BmcIdentity, BmcInventory, BootTarget, PowerState } from '../../api/bmc';
import { endpointHostPort } from './address';
import type { BmcFailures } from './errors';
import { RedfishTransport, type RedfishTransportOptions } from './redfish-transport';
import type { IronflowBmcDriver } from './types';

/** redfish-client logs through its own pino at debug to stdout unless given one: give it a silent one. */
const SILENT = pino({ level: 'silent' });

/**
 * The part of redfish-client's base class Ironflow uses. Its .d.ts files
 * import each other without extensions inside a `"type": "module"` package,
 * which TypeScript's nodenext resolution cannot follow, so the inherited
 * members are declared here (checked against dist/clients/base.d.ts 0.5.4).
 */
interface RedfishClientApi {
  customFetch<T>(url: string, options?: RequestInit, withSessionToken?: boolean): Promise<{ data: T; headers: Headers }>;
  getAvailableSystemIds(): Promise<string[]>;
  getSystemInfo(systemId?: string, refresh?: boolean): Promise<unknown>;
  powerOnSystem(systemId?: string): Promise<boolean>;
  shutdownSystem(systemId?: string): Promise<boolean>;
  forceOffSystem(systemId?: string): Promise<boolean>;
  forceRestartSystem(systemId?: string): Promise<boolean>;
}
/**
 * redfish-client 0.5.4 ships its CommonJS build as dist/index.js inside a
 * `"type": "module"` package, so a plain `require('redfish-client')` dies in
 * Node with "module is not defined in ES module scope" (jest hides it by
 * transpiling). Its ESM build, dist/index.mjs, loads with require(esm)
 * (Node >= 20.19), so load that file by path.
 */
function loadRedfishClient(): typeof RedfishClientModule {
  const esm = join(dirname(require.resolve('redfish-client')), 'index.mjs');
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- see above: the package's require entry is broken
  return require(esm) as typeof RedfishClientModule;
}
const LibraryClient = loadRedfishClient().iDRACRedfishClient as unknown as new (address: string, username: string, password: string, logger: typeof SILENT) => RedfishClientApi;

/**
 * redfish-client with its transport replaced. The library hard-codes
 * `https://<address>` as `baseUrl` and its own fetch (no certificate checks,
 * sessions only); `customFetch` is its single overridable request path, so
 * every library call goes through {@link RedfishTransport} instead.
 * (`iDRACRedfishClient` is the library's only exported concrete client; its
 * generic calls are the base class's, the iDRAC part is virtual media only.)
 */
class TransportedRedfishClient extends LibraryClient {
  constructor(
    private readonly transport: RedfishTransport,
    endpoint: BmcEndpoint,
    username: string,
  ) {
    // The library keeps the password only for its own session login, which
    // our customFetch never calls: do not hand it over.
    super(endpointHostPort(endpoint), username, '', SILENT);
    (this as unknown as { baseUrl: string }).baseUrl = transport.origin;
  }

  override async customFetch<T>(url: string, options: RequestInit = {}, withSessionToken = true): Promise<{ data: T; headers: Headers }> {
    const { data, headers } = await this.transport.request<T>(
      url,
      { method: options.method, body: options.body ?? undefined, headers: options.headers as Record<string, string> | undefined },
      withSessionToken,
    );
    return { data, headers };
  }
}

interface RedfishSystem {
  '@odata.id': string;
  PowerState?: string;
  Manufacturer?: string;
  Model?: string;
  SerialNumber?: string;
  BiosVersion?: string;
  ProcessorSummary?: { Count?: number; Model?: string; CoreCount?: number };
  MemorySummary?: { TotalSystemMemoryGiB?: number };
  Boot?: {
    BootSourceOverrideTarget?: string;
    BootSourceOverrideEnabled?: string;
    'BootSourceOverrideTarget@Redfish.AllowableValues'?: string[];
  };
  Actions?: { '#ComputerSystem.Reset'?: { target: string; 'ResetType@Redfish.AllowableValues'?: string[] } };
  EthernetInterfaces?: { '@odata.id': string };
  Storage?: { '@odata.id': string };
  SimpleStorage?: { '@odata.id': string };
}
type Collection = { Members?: Array<{ '@odata.id': string }> };

const REDFISH_TARGET: Record<BootTarget, string> = { pxe: 'Pxe', disk: 'Hdd' };

/**
 * BmcDriver over Redfish. The library covers system discovery, system reads
 * and the reset action; the gaps are filled with plain requests on the same
 * transport (marked below): reading the boot override, setting it without
 * forcing UEFI mode, checking allowed reset types, and the inventory pieces
 * (Ethernet interfaces, drives) the library does not read.
 */
export class RedfishDriver implements IronflowBmcDriver {
  readonly reportsBootPersistence = true;
  private readonly client: TransportedRedfishClient;
  private readonly transport: RedfishTransport;
  private systemId?: string;

  constructor(
    readonly endpoint: BmcEndpoint,
    private readonly failures: BmcFailures,
    opts: Omit<RedfishTransportOptions, 'endpoint' | 'failures'>,
  ) {
    this.transport = new RedfishTransport({ ...opts, endpoint, failures });
    this.client = new TransportedRedfishClient(this.transport, endpoint, opts.credentials.username);
  }

  /** 'basic' or 'session' once a request was made: which auth the BMC offered. */
  get authKind(): string {
    return this.transport.authKind;
  }

  async getPowerState(): Promise<PowerState> {
    const sys = await this.system();
    // PoweringOn is not on yet and PoweringOff not off yet: callers poll until it settles.
    if (sys.PowerState === 'On' || sys.PowerState === 'PoweringOff') return 'on';
    if (sys.PowerState === 'Off' || sys.PowerState === 'PoweringOn') return 'off';
    throw this.failures.protocol(`PowerState "${String(sys.PowerState)}" on ${sys['@odata.id']}`);
  }

  async setPowerState(state: PowerState): Promise<void> {
    await this.resetAction(state === 'on' ? 'On' : 'ForceOff');
  }

  async softPowerOff(): Promise<void> {
    await this.resetAction('GracefulShutdown');
  }

  async reset(): Promise<void> {
    await this.resetAction('ForceRestart');
  }

  async setNextBoot(target: BootTarget, opts: { persistent?: boolean } = {}): Promise<void> {
    const sys = await this.system();
    const wanted = REDFISH_TARGET[target];
    const allowed = sys.Boot?.['BootSourceOverrideTarget@Redfish.AllowableValues'];
    if (!sys.Boot || (allowed && !allowed.includes(wanted))) {
      throw this.failures.unsupported(`BootSourceOverrideTarget=${wanted} on ${sys['@odata.id']} (allowed: ${allowed?.join(', ') ?? 'none'})`);
    }
    // Gap: the library's setNextBootDevice also forces BootSourceOverrideMode=UEFI,
    // which would flip a legacy-BIOS server's boot mode; this PATCH leaves the mode alone.
    const etag = await this.systemEtag();
    await this.transport.request(sys['@odata.id'], {
      method: 'PATCH',
      headers: etag ? { 'If-Match': etag } : {},
      body: { Boot: { BootSourceOverrideTarget: wanted, BootSourceOverrideEnabled: opts.persistent ? 'Continuous' : 'Once' } },
    });
  }

  async getNextBoot(): Promise<{ target: BootTarget | 'none' | 'other'; persistent: boolean }> {
    // Gap: the library has no reader for the boot override.
    const boot = (await this.system()).Boot ?? {};
    const persistent = boot.BootSourceOverrideEnabled === 'Continuous';
    if (!boot.BootSourceOverrideEnabled || boot.BootSourceOverrideEnabled === 'Disabled') return { target: 'none', persistent: false };
    switch (boot.BootSourceOverrideTarget) {
      case 'Pxe':
        return { target: 'pxe', persistent };
      case 'Hdd':
        return { target: 'disk', persistent };
      case undefined:
      case 'None':
        return { target: 'none', persistent };
      default:
        return { target: 'other', persistent };
    }
  }

  /** One GET of the system resource (after discovery when the address names no system). */
  async getIdentity(): Promise<BmcIdentity> {
    const sys = await this.system();
    return {
      ...(sys.Manufacturer ? { manufacturer: sys.Manufacturer } : {}),
      ...(sys.Model ? { model: sys.Model } : {}),
      ...(sys.SerialNumber ? { serialNumber: sys.SerialNumber } : {}),
    };
  }

  async getInventory(): Promise<BmcInventory> {
    const sys = await this.system();
    // Gap: the library reads processors and memory one resource at a time and
    // has no reader for Ethernet interfaces or drives; the summaries on the
    // system resource need no extra request.
    const inv: BmcInventory = {
      manufacturer: sys.Manufacturer,
      model: sys.Model,
      serialNumber: sys.SerialNumber,
      biosVersion: sys.BiosVersion,
      nics: await this.nics(sys),
      disks: await this.disks(sys),
    };
    if (sys.ProcessorSummary?.Count) inv.cpu = { count: sys.ProcessorSummary.Count, model: sys.ProcessorSummary.Model, cores: sys.ProcessorSummary.CoreCount };
    // 96 GiB → 98304 MiB
    if (sys.MemorySummary?.TotalSystemMemoryGiB) inv.memoryMiB = Math.round(sys.MemorySummary.TotalSystemMemoryGiB * 1024);
    return inv;
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  /** The system named by the address, or the BMC's only system. */
  private async id(): Promise<string> {
    if (this.systemId) return this.systemId;
    const path = this.endpoint.systemPath;
    if (path) {
      const m = /^\/redfish\/v1\/Systems\/([^/]+)$/.exec(path);
      if (!m) throw this.failures.unsupported(`the system path ${path} (expected /redfish/v1/Systems/<id>)`);
      this.systemId = decodeURIComponent(m[1]!);
    } else {
      const ids = await this.client.getAvailableSystemIds();
      if (ids.length !== 1) {
        throw this.failures.unsupported(
          `choosing among ${ids.length} systems (${ids.slice(0, 5).join(', ')}): put /redfish/v1/Systems/<id> in spec.bmc.address`,
        );
      }
      this.systemId = ids[0] as string;
    }
    return this.systemId;
  }

  /** Always a fresh read: the library caches systems, and power/boot state is what we verify. */
  private async system(): Promise<RedfishSystem> {
    return (await this.client.getSystemInfo(await this.id(), true)) as unknown as RedfishSystem;
  }

  private async systemEtag(): Promise<string | undefined> {
    const info = (await this.client.getSystemInfo(await this.id(), false)) as unknown as { Etag?: string };
    return info.Etag || undefined;
  }

  private async resetAction(type: 'On' | 'ForceOff' | 'GracefulShutdown' | 'ForceRestart'): Promise<void> {
    const sys = await this.system();
    const action = sys.Actions?.['#ComputerSystem.Reset'];
    if (!action) throw this.failures.unsupported(`the ComputerSystem.Reset action on ${sys['@odata.id']}`);
    // Gap: the library posts any ResetType blindly; check what the BMC says it takes.
    const allowed = action['ResetType@Redfish.AllowableValues'];
    if (allowed && !allowed.includes(type)) throw this.failures.unsupported(`ResetType ${type} (allowed: ${allowed.join(', ')})`);
    const id = await this.id();
    if (type === 'On') await this.client.powerOnSystem(id);
    else if (type === 'ForceOff') await this.client.forceOffSystem(id);
    else if (type === 'GracefulShutdown') await this.client.shutdownSystem(id);
    else await this.client.forceRestartSystem(id);
  }

  private async members(collection: { '@odata.id': string } | undefined): Promise<unknown[]> {
    if (!collection) return [];
    const { data } = await this.transport.request<Collection | undefined>(collection['@odata.id'], { optional: true });
    const out: unknown[] = [];
    // Sequential on purpose: the per-BMC limit is small, and BMC web servers are slow under load.
    for (const m of data?.Members ?? []) {
      const item = (await this.transport.request<unknown>(m['@odata.id'], { optional: true })).data;
      if (item) out.push(item);
    }
    return out;
  }

  private async nics(sys: RedfishSystem): Promise<BmcInventory['nics']> {
    const ifaces = (await this.members(sys.EthernetInterfaces)) as Array<{ Id?: string; Name?: string; MACAddress?: string; SpeedMbps?: number }>;
    return ifaces
      .filter((i) => i.MACAddress)
      .map((i) => ({ name: i.Id ?? i.Name, mac: i.MACAddress!.toLowerCase(), ...(i.SpeedMbps ? { speedMbps: i.SpeedMbps } : {}) }));
  }

  private async disks(sys: RedfishSystem): Promise<BmcInventory['disks']> {
    type Drive = { Name?: string; Id?: string; CapacityBytes?: number; SerialNumber?: string; Model?: string; MediaType?: string; Status?: { State?: string } };
    const present = (d: Drive) => d.Status?.State !== 'Absent';
    const toDisk = (d: Drive) => ({
      name: d.Name ?? d.Id,
      sizeBytes: d.CapacityBytes,
      serialNumber: d.SerialNumber,
      model: d.Model,
      ...(d.MediaType ? { rotational: d.MediaType === 'HDD' } : {}),
    });
    if (sys.Storage) {
      const controllers = (await this.members(sys.Storage)) as Array<{ Drives?: Array<{ '@odata.id': string }> }>;
      const drives: Drive[] = [];
      for (const c of controllers) {
        for (const d of c.Drives ?? []) {
          const drive = (await this.transport.request<Drive | undefined>(d['@odata.id'], { optional: true })).data;
          if (drive) drives.push(drive);
        }
      }
      if (drives.length > 0) return drives.filter(present).map(toDisk);
    }
    // Older BMCs (and DMTF's rackmount mockup) only have SimpleStorage.
    const simple = (await this.members(sys.SimpleStorage)) as Array<{ Devices?: Drive[] }>;
    return simple.flatMap((c) => c.Devices ?? []).filter(present).map(toDisk);
  }
}
