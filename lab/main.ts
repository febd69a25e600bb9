/**
 * The virtual lab as a process of its own: `npm start` runs it beside the
 * management plane (scripts/start.ts), as real servers sit beside a real
 * plane. It starts the BMC emulators and simulated or QEMU servers of an
 * inventory, writes their BareMetalHost manifests, and reports ready over
 * its IPC channel (api/lab-process.ts). SIGINT/SIGTERM, or the launcher
 * going away, stop everything it started.
 */
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import pino from 'pino';
import { LAB_READY, type LabReadyMessage } from '../api/lab-process';
import { projectRoot } from '../api/project-root';
import { loadInventory } from './inventory';
import { startLab } from './lab';

/** The QEMU machines' addresses on the lab network (its gateway is 10.99.0.1). */
const QEMU_DHCP_RANGE = { start: '10.99.0.100', end: '10.99.0.199' };

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError(`"${value}" is not a TCP port (1-65535)`);
  return n;
}

function hostPort(value: string): { host: string; port: number } {
  const i = value.lastIndexOf(':');
  if (i <= 0) throw new InvalidArgumentError(`"${value}" is not host:port`);
  return { host: value.slice(0, i), port: port(value.slice(i + 1)) };
}

async function main(): Promise<void> {
  const root = projectRoot(__dirname);
  const o = new Command('ironflow-lab')
    .description('Ironflow virtual lab: BMC emulators and servers that PXE-boot against a management plane')
    .addOption(new Option('--inventory <file>', 'servers of the lab').env('IRONFLOW_LAB_INVENTORY').default(join(root, 'lab', 'inventory.yaml')))
    .addOption(new Option('--work-dir <dir>', 'emulator state, disk files and the manifests').default(join(root, '.ironflow', 'lab')))
    .addOption(new Option('--base-port <port>', 'first port of the lab BMCs (Redfish shards, then IPMI at +100)').env('IRONFLOW_LAB_BASE_PORT').default(6200).argParser(port))
    .addOption(new Option('--pxe-http-url <url>', "the plane's PXE HTTP service").default('http://127.0.0.1:6180'))
    .addOption(new Option('--tftp <host:port>', "the plane's TFTP service").default('127.0.0.1:6969').argParser(hostPort))
    .addOption(new Option('--log-level <level>', 'pino log level').env('IRONFLOW_LOG_LEVEL').default('info').choices(['trace', 'debug', 'info', 'warn', 'error']))
    .parse(process.argv)
    .opts<{ inventory: string; workDir: string; basePort: number; pxeHttpUrl: string; tftp: { host: string; port: number } | string; logLevel: string }>();
  const tftp = typeof o.tftp === 'string' ? hostPort(o.tftp) : o.tftp;
  const log = pino({ name: 'ironflow-lab', level: o.logLevel });
  const inventory = loadInventory(o.inventory);
  const lab = await startLab({
    inventory,
    workDir: o.workDir,
    pxe: { httpUrl: o.pxeHttpUrl, tftp },
    basePort: o.basePort,
    onEvent: (server, e) => log.info({ server, ...e }, `lab ${server}: ${e.kind}`),
    log: (line) => log.debug(line),
  });
  const sims = lab.members.filter((m) => !m.vm);
  const net = lab.provisioningNetwork;
  const ready: LabReadyMessage = {
    kind: LAB_READY,
    manifestsFile: lab.manifestsFile,
    servers: {
      redfish: sims.filter((m) => m.server.bmc.protocol === 'redfish').length,
      ipmi: sims.filter((m) => m.server.bmc.protocol === 'ipmi').length,
      qemu: lab.members.length - sims.length,
    },
    provisioningNetwork: net ? { netns: net.netns, interface: net.interface, range: QEMU_DHCP_RANGE, bootUrl: net.bootUrl } : undefined,
  };
  log.info({ ...ready, inventory: o.inventory }, 'lab ready');
  process.send?.(ready);

  let stopping = false;
  const stop = (why: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ why }, 'lab stopping');
    lab.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'lab stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('disconnect', () => stop('the launcher went away'));
}

main().catch((err: unknown) => {
  console.error(`ironflow lab: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
