/**
 * A lab beside a host stack, as `npm start` runs them (scripts/start.ts):
 * the lab's servers PXE-boot against the stack's provisioning services, and
 * when the lab has QEMU machines, Ironflow's DHCP (dnsmasq) serves the lab's
 * provisioning network, as the plane does with --dhcp-interface/--dhcp-netns.
 * Tests run both in one process (test/ may import anything); the product
 * never does.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { LabInventory } from '../../api/lab';
import { startDhcp } from '../../activities/pxe/dhcp';
import { startLab, type Lab } from '../../lab/lab';
import type { BootEvent } from '../../lab/sim/server';
import type { HostStack } from '../../workers/host-stack';

export interface LabBeside {
  lab: Lab;
  stop(): Promise<void>;
}

export async function startLabBeside(
  stack: HostStack,
  o: { inventory: LabInventory; stateDir: string; log: Logger; basePort?: number; onEvent?: (server: string, e: BootEvent) => void },
): Promise<LabBeside> {
  const lab = await startLab({
    inventory: o.inventory,
    workDir: join(o.stateDir, 'lab'),
    pxe: { httpUrl: stack.provisioning.httpUrl, tftp: stack.provisioning.tftp },
    basePort: o.basePort,
    onEvent: o.onEvent ?? ((server, e) => o.log.info({ component: 'lab', server, ...e }, `lab ${server}: ${e.kind}`)),
    log: (line) => o.log.debug({ component: 'lab' }, line),
  });
  let dhcp: { stop(): Promise<void> } | undefined;
  const net = lab.provisioningNetwork;
  if (net) {
    try {
      dhcp = await startDhcp({
        interface: net.interface,
        netns: net.netns,
        range: { mode: 'serve', start: '10.99.0.100', end: '10.99.0.199', leaseTime: '1h' },
        chainUrl: net.bootUrl,
        stateDir: join(o.stateDir, 'pxe', 'dhcp'),
        log: o.log.child({ component: 'dhcp' }),
      });
    } catch (err) {
      await lab.stop();
      throw err;
    }
  }
  return {
    lab,
    stop: async () => {
      await dhcp?.stop();
      await lab.stop();
    },
  };
}
