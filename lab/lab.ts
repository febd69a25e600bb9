/**
 * The virtual lab: an inventory of servers brought to life. Redfish servers
 * get a real sushy-emulator (fake driver, sharded) behind the fault proxy,
 * which also checks each server's own BMC credentials; IPMI servers get a
 * real ipmi_sim each. Every server is a SimServer that follows its BMC's
 * power and boot changes (sushy's notifier, ipmi_sim's chassis script) and
 * PXE-boots the agent for real against Ironflow's PXE services.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent } from 'undici';
import type { LabFaultSpec, LabInventory, LabServer } from '../api/lab';
import { startFaultProxy, type FaultProxy } from './bmc/fault-proxy';
import { startIpmiSim, type IpmiSim } from './bmc/ipmi-sim';
import { startSushyFleet } from './bmc/sushy';
import { renderHostManifests } from './manifests';
import { startPxeFaultPath } from './sim/pxe-fault-path';
import { SimServer, type BootEvent, type PxeEndpoints } from './sim/server';
import { startQemuBmc } from './qemu/bmc';
import { startLabNetwork } from './qemu/network';
import { startVm, type LabVm } from './qemu/vm';

export interface StartLabOptions {
  inventory: LabInventory;
  workDir: string;
  pxe: PxeEndpoints;
  log?: (line: string) => void;
  onEvent?: (server: string, e: BootEvent) => void;
  /**
   * Fixed ports, so BMC addresses in BareMetalHosts stay valid across a
   * restart of the plane: Redfish server i (in inventory order) on TCP
   * basePort+i, IPMI server j on UDP basePort+100+j. Unset: free ports (tests).
   */
  basePort?: number;
}

/** A stable Redfish system id per server name (UUID-shaped, from SHA-1 of the name). */
function systemUuid(name: string): string {
  const h = createHash('sha1').update(`ironflow-lab/${name}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export interface LabMember {
  server: LabServer;
  bmcAddress: string;
  /** A simulated server (kind: sim, the default)... */
  sim?: SimServer;
  /** ...or a QEMU machine (kind: qemu) on the lab's provisioning network. */
  vm?: LabVm;
}

/** The network namespace the QEMU machines live on, where Ironflow must serve DHCP. */
export interface ProvisioningNetwork {
  netns: string;
  interface: string;
  gateway: string;
  /** What DHCP should hand iPXE clients (relayed to Ironflow's HTTP server). */
  bootUrl: string;
}

export interface Lab {
  members: LabMember[];
  /** Set when the lab has QEMU machines. */
  provisioningNetwork?: ProvisioningNetwork;
  /** BareMetalHost + Secret manifests for the whole lab (multi-document YAML). */
  manifests: string;
  /** Where the manifests were written (0600). */
  manifestsFile: string;
  member(name: string): LabMember;
  /** Sets BMC faults of one Redfish server at runtime (bmc-401, bmc-409, ...). */
  setBmcFaults(name: string, faults: LabFaultSpec[]): void;
  proxies: FaultProxy[];
  stop(): Promise<void>;
}

const BMC_FAULTS = new Set(['bmc-401', 'bmc-409', 'bmc-503', 'bmc-timeout', 'bmc-session-lost', 'power-stuck']);

/** Follows an append-only JSON-lines file (ipmi_sim's chassis events). */
function followJsonLines(file: string, onLine: (o: Record<string, unknown>) => void): () => void {
  let offset = 0;
  const t = setInterval(() => {
    let size = 0;
    try {
      size = statSync(file).size;
    } catch {
      return;
    }
    if (size <= offset) return;
    const text = readFileSync(file).subarray(offset, size).toString('utf8');
    const complete = text.lastIndexOf('\n') + 1;
    offset += Buffer.byteLength(text.slice(0, complete));
    for (const line of text.slice(0, complete).split('\n').filter(Boolean)) {
      try {
        onLine(JSON.parse(line) as Record<string, unknown>);
      } catch {
        /* a torn line: skipped */
      }
    }
  }, 100);
  t.unref();
  return () => clearInterval(t);
}

/**
 * Emulators of an earlier run of this lab that outlived their plane (kill -9
 * of the plane leaves them running): found by their work folder in the
 * command line, and ended before this run starts its own.
 */
function killStaleEmulators(workDir: string): void {
  try {
    execFileSync('pkill', ['-KILL', '-f', `${workDir}/`], { stdio: 'ignore' });
  } catch {
    /* exit 1: none were running */
  }
}

/** The gateway port in the namespace that relays to Ironflow's PXE HTTP server on loopback. */
const QEMU_RELAY_PORT = 8080;

/**
 * kind: qemu servers: real VMs (TCG) on a bridge in a network namespace the
 * lab creates, each behind an ipmi_sim BMC that drives QEMU over QMP
 * (lab/qemu); their BMC protocol is always IPMI. DHCP on that network is
 * Ironflow's (the plane starts it on `Lab.provisioningNetwork`), as in a
 * datacenter; the lab only relays the gateway's HTTP port to loopback.
 */
async function startQemuMembers(servers: LabServer[], o: StartLabOptions, cleanups: Array<() => Promise<void>>): Promise<{ members: LabMember[]; network: ProvisioningNetwork }> {
  const network = await startLabNetwork({ workDir: join(o.workDir, 'qemu-net') });
  cleanups.push(() => network.stop());
  await network.relay(QEMU_RELAY_PORT, Number(new URL(o.pxe.httpUrl).port));
  const members: LabMember[] = [];
  for (const [i, s] of servers.entries()) {
    const vm = await startVm({
      name: s.name,
      workDir: join(o.workDir, 'servers', s.name, 'vm'),
      network,
      tap: await network.addTap(`tap${i}`),
      mac: s.nics[0]!.mac,
      diskMiB: Math.max(16, Math.round((s.disks[0]?.sizeGiB ?? 0.0625) * 1024)),
      diskSerial: s.disks[0]?.serialNumber,
    });
    cleanups.push(() => vm.stop());
    const bmc = await startQemuBmc({ name: s.name, workDir: join(o.workDir, 'servers', s.name, 'bmc'), qmpSocket: vm.bmcQmpSocket, username: s.bmc.username, password: s.bmc.password, log: o.log });
    cleanups.push(() => bmc.stop());
    members.push({ server: s, bmcAddress: bmc.address, vm });
  }
  return {
    members,
    network: { netns: network.netns, interface: network.bridge, gateway: network.gateway, bootUrl: `http://${network.gateway}:${QEMU_RELAY_PORT}/boot.ipxe` },
  };
}

export async function startLab(o: StartLabOptions): Promise<Lab> {
  mkdirSync(o.workDir, { recursive: true });
  killStaleEmulators(o.workDir);
  const sims = new Map<string, SimServer>();
  const cleanups: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  };

  try {
    // sushy's notifier PUTs the whole system ({name, power_state, boot_device, ...}) on every change.
    const notifier: Server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        try {
          const sys = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { name?: string; power_state?: string; boot_device?: string };
          const sim = sys.name ? sims.get(sys.name) : undefined;
          sim?.onBmcState(sys.power_state === 'On' ? 'on' : 'off', sys.boot_device ?? 'Hdd');
        } catch {
          /* not a notification */
        }
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => notifier.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => notifier.close(() => r())));
    const notificationUrl = `http://127.0.0.1:${(notifier.address() as { port: number }).port}/notify`;

    const simulated = o.inventory.servers.filter((s) => (s.kind ?? 'sim') === 'sim');
    const qemuServers = o.inventory.servers.filter((s) => s.kind === 'qemu');
    const redfishServers = simulated.filter((s) => s.bmc.protocol === 'redfish');
    const ipmiServers = simulated.filter((s) => s.bmc.protocol === 'ipmi');
    const addresses = new Map<string, string>();
    const powerOff = new Map<string, () => Promise<void>>();
    const proxies: FaultProxy[] = [];
    const proxyOf = new Map<string, { proxy: FaultProxy; systemId: string }>();

    if (redfishServers.length > 0) {
      const fleet = await startSushyFleet({
        systems: redfishServers.map((s) => ({ name: s.name, uuid: systemUuid(s.name), powerState: 'Off', nics: s.nics.map((n) => ({ mac: n.mac })) })),
        workDir: join(o.workDir, 'sushy'),
        notificationUrl,
        // A killed emulator comes back on its port with its systems (sushy keeps them in its state folder);
        // every server behind it gets a bmc-down and a bmc-up event.
        superviseShard: (i, names) => ({
          name: `sushy-emulator shard-${i}`,
          log: o.log,
          onDown: (reason, restartInMs) => names.forEach((n) => o.onEvent?.(n, { kind: 'bmc-down', reason: `sushy-emulator ${reason}`, restartInMs })),
          onUp: (msSinceRestart) => names.forEach((n) => o.onEvent?.(n, { kind: 'bmc-up', msSinceRestart })),
        }),
      });
      cleanups.push(() => fleet.stop());
      // Every Redfish server gets a BMC address of its own (a fault proxy port in front of its shard),
      // as in a rack: the plane limits requests in flight per BMC address, so 100 servers behind one
      // port would queue behind one limit of 4 (activities/bmc/driver.ts).
      let index = 0;
      for (const shard of fleet.shards) {
        const upstreamAgent = new Agent({ connect: { rejectUnauthorized: false } });
        cleanups.push(() => upstreamAgent.close());
        for (const s of redfishServers) {
          const id = shard.systemIds[s.name];
          if (!id) continue;
          const proxy = await startFaultProxy({
            upstream: shard.url,
            sessions: true,
            systemCredentials: new Map([[id, { username: s.bmc.username, password: s.bmc.password }]]),
            onlySystem: id,
            upstreamAgent,
            port: o.basePort ? o.basePort + index : undefined,
          });
          index += 1;
          cleanups.push(() => proxy.stop());
          proxies.push(proxy);
          addresses.set(s.name, `redfish+http://127.0.0.1:${proxy.port}/redfish/v1/Systems/${id}`);
          proxyOf.set(s.name, { proxy, systemId: id });
          const bmcFaults = (s.faults ?? []).filter((f) => BMC_FAULTS.has(f.fault));
          if (bmcFaults.length > 0) proxy.setFaults(id, bmcFaults);
          // The server powering itself off goes straight to the emulator, past the fault proxy.
          powerOff.set(s.name, async () => {
            await fetch(`${shard.url}/redfish/v1/Systems/${id}/Actions/ComputerSystem.Reset`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ ResetType: 'ForceOff' }),
            });
          });
        }
      }
    }

    for (const [j, s] of ipmiServers.entries()) {
      const sim: IpmiSim = await startIpmiSim({
        port: o.basePort ? o.basePort + 100 + j : undefined,
        name: s.name,
        workDir: join(o.workDir, 'ipmi', s.name),
        username: s.bmc.username,
        password: s.bmc.password,
        fru: { manufacturer: s.vendor, product: s.model, serial: s.disks[0]?.serialNumber ?? s.name },
        // A killed ipmi_sim comes back on its port; the chassis state file it reads outlives it.
        supervise: {
          log: o.log,
          onDown: (reason, restartInMs) => o.onEvent?.(s.name, { kind: 'bmc-down', reason: `ipmi_sim ${reason}`, restartInMs }),
          onUp: (msSinceRestart) => o.onEvent?.(s.name, { kind: 'bmc-up', msSinceRestart }),
        },
      });
      cleanups.push(() => sim.stop());
      addresses.set(s.name, sim.address);
      const unfollow = followJsonLines(sim.eventsFile, (e) => {
        const st = sim.state();
        sims.get(s.name)?.onBmcState(st.power, String(e.boot ?? st.boot));
      });
      cleanups.push(async () => unfollow());
      powerOff.set(s.name, async () => {
        await new Promise<void>((resolve) => {
          const p = spawn('ipmitool', ['-I', 'lanplus', '-C', '3', '-H', '127.0.0.1', '-p', String(sim.port), '-U', s.bmc.username, '-E', 'chassis', 'power', 'off'], {
            env: { ...process.env, IPMI_PASSWORD: s.bmc.password },
            stdio: 'ignore',
          });
          p.on('exit', () => resolve());
          p.on('error', () => resolve());
        });
      });
    }

    const members: LabMember[] = [];
    let provisioningNetwork: ProvisioningNetwork | undefined;
    if (qemuServers.length > 0) {
      const q = await startQemuMembers(qemuServers, o, cleanups);
      members.push(...q.members);
      provisioningNetwork = q.network;
    }
    for (const s of simulated) {
      // A server with PXE faults reaches the PXE services through a lossy path of its own.
      const loss = (f: string) => (s.faults ?? []).filter((x) => x.fault === f).reduce((n, x) => n + (x.count ?? 1), 0);
      let via: { httpOrigin: string; tftp: { host: string; port: number } } | undefined;
      if (loss('pxe-tftp-loss') + loss('pxe-http-loss') > 0) {
        const path = await startPxeFaultPath({
          tftp: o.pxe.tftp,
          httpOrigin: new URL(o.pxe.httpUrl).origin,
          tftpLoss: loss('pxe-tftp-loss'),
          httpLoss: loss('pxe-http-loss'),
          onLoss: (what) => o.log?.(`lab: ${s.name} ${what}`),
        });
        cleanups.push(() => path.stop());
        via = path.via;
      }
      const sim = new SimServer({
        via,
        firmware: s.firmware?.bootRetrySeconds !== undefined ? { bootRetryDelayMs: s.firmware.bootRetrySeconds * 1000 } : undefined,
        server: s,
        workDir: join(o.workDir, 'servers', s.name),
        pxe: o.pxe,
        powerOffViaBmc: powerOff.get(s.name) ?? (async () => undefined),
        onEvent: o.onEvent,
        log: o.log,
      });
      await sim.init();
      sims.set(s.name, sim);
      cleanups.push(() => sim.stop());
      members.push({ server: s, bmcAddress: addresses.get(s.name)!, sim });
    }

    const manifests = renderHostManifests(o.inventory, (s) => members.find((m) => m.server.name === s.name)!.bmcAddress);
    const manifestsFile = join(o.workDir, 'hosts.yaml');
    writeFileSync(manifestsFile, manifests, { mode: 0o600 });

    return {
      members,
      provisioningNetwork,
      manifests,
      manifestsFile,
      proxies,
      member: (name) => {
        // (sim is absent for kind: qemu members, vm for simulated ones)
        const m = members.find((x) => x.server.name === name);
        if (!m) throw new Error(`no lab server named ${name}`);
        return m;
      },
      setBmcFaults: (name, faults) => {
        const p = proxyOf.get(name);
        if (!p) throw new Error(`${name} has no Redfish BMC behind the fault proxy`);
        p.proxy.setFaults(p.systemId, faults);
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
