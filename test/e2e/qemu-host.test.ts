/**
 * The whole path with a real machine: kubectl apply of a BareMetalHost whose
 * BMC fronts a QEMU VM -> k8s-bridge -> host workflow -> IPMI (ipmitool) ->
 * DHCP from Ironflow's dnsmasq in a network namespace -> iPXE -> the agent
 * ramdisk on a real (emulated) CPU -> inspection -> status on the real
 * kube-apiserver.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import pino from 'pino';
import { randomBytes } from 'node:crypto';
import { projectRoot } from '../../api/project-root';
import { startDhcp } from '../../activities/pxe/dhcp';
import { startQemuBmc } from '../../lab/qemu/bmc';
import { startLabNetwork, type LabNetwork } from '../../lab/qemu/network';
import { startVm } from '../../lab/qemu/vm';
import { freePort } from '../../workers/embedded/ports';
import { startHostStack, type HostStack } from '../../workers/host-stack';
import { labWorkDir, silentLog } from '../helpers/bmc-lab';
import { kubeTestContext, sharedEnv, temporalTestContext, type KubeTestContext, type TemporalTestContext } from '../helpers/env';
import { registerTestSecret } from '../helpers/secrets';

const MAC = '52:54:00:1f:e2:01';
const DISK_MIB = 96;

describe('a BareMetalHost backed by a QEMU machine', () => {
  const work = labWorkDir('qemu-host');
  const cleanups: Array<() => Promise<void>> = [];
  let kube: KubeTestContext;
  let temporal: TemporalTestContext;
  let stack: HostStack;
  let network: LabNetwork;
  let bmcAddress = '';
  const password = `qemu-${randomBytes(5).toString('hex')}`;

  beforeAll(async () => {
    registerTestSecret(password);
    kube = await kubeTestContext('qemu');
    temporal = await temporalTestContext('qemu');
    network = await startLabNetwork({ workDir: join(work, 'net') });
    cleanups.push(() => network.stop());
    const relayPort = 8080;
    // The machine reaches the PXE/agent services through the namespace's gateway address.
    const httpPort = await freePort();
    stack = await startHostStack({
      kc: kube.kc,
      client: temporal.client,
      connection: temporal.nativeConnection,
      namespace: temporal.namespace,
      taskQueue: temporal.taskQueue,
      stateDir: join(sharedEnv().stateDir, `qemu-${kube.namespace}`),
      agentBootDir: join(projectRoot(__dirname), '.ironflow', 'boot'),
      provisioning: { bindHost: '127.0.0.1', httpPort, tftpPort: 0, publicUrl: `http://${network.gateway}:${relayPort}` },
      watchNamespace: kube.namespace,
      bmcLoopbackOnly: true,
      log: pino({ level: 'debug' }, pino.destination({ dest: join(sharedEnv().stateDir, 'logs', `qemu-host-${kube.namespace}.log`), sync: true, mkdir: true })),
    });
    cleanups.push(() => stack.stop());
    await network.relay(relayPort, httpPort);
    const dhcp = await startDhcp({
      interface: network.bridge,
      netns: network.netns,
      range: { mode: 'serve', start: '10.99.0.100', end: '10.99.0.150', leaseTime: '1h' },
      chainUrl: `http://${network.gateway}:${relayPort}/boot.ipxe`,
      stateDir: join(work, 'dhcp'),
      log: silentLog,
    });
    cleanups.push(() => dhcp.stop());
    const vm = await startVm({ name: 'qemu-host-1', workDir: join(work, 'vm'), network, tap: await network.addTap('tap1'), mac: MAC, diskMiB: DISK_MIB });
    cleanups.push(() => vm.stop());
    const bmc = await startQemuBmc({ name: 'qemu-host-1', workDir: join(work, 'bmc'), qmpSocket: vm.bmcQmpSocket, username: 'admin', password });
    cleanups.push(() => bmc.stop());
    bmcAddress = bmc.address;
  }, 90_000);

  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await temporal?.close();
    await kube?.cleanup();
  }, 60_000);

  it('is registered and inspected over PXE: status shows the VM\'s real MAC and disk size', async () => {
    await kube.kc.makeApiClient(CoreV1Api).createNamespacedSecret({ namespace: kube.namespace, body: { metadata: { name: 'vm-bmc' }, stringData: { username: 'admin', password } } });
    const custom = kube.kc.makeApiClient(CustomObjectsApi);
    const t0 = Date.now();
    await custom.createNamespacedCustomObject({
      group: 'metal3.io',
      version: 'v1alpha1',
      namespace: kube.namespace,
      plural: 'baremetalhosts',
      body: { apiVersion: 'metal3.io/v1alpha1', kind: 'BareMetalHost', metadata: { name: 'vm-1' }, spec: { online: false, bootMACAddress: MAC, bmc: { address: bmcAddress, credentialsName: 'vm-bmc' } } },
    });
    type Host = { status?: { provisioning?: { state?: string }; errorMessage?: string; hardware?: { nics: Array<{ mac: string }>; disks: Array<{ sizeBytes: number }>; memoryMiB: number } } };
    let host: Host = {};
    while (Date.now() - t0 < 150_000) {
      host = (await custom.getNamespacedCustomObject({ group: 'metal3.io', version: 'v1alpha1', namespace: kube.namespace, plural: 'baremetalhosts', name: 'vm-1' })) as Host;
      if (host.status?.provisioning?.state === 'available') break;
      await sleep(500);
    }
    process.stdout.write(`qemu e2e: vm-1 available ${((Date.now() - t0) / 1000).toFixed(1)} s after create (${JSON.stringify(host.status?.provisioning)})\n`);
    expect(host.status?.provisioning?.state).toBe('available');
    expect(host.status?.hardware?.nics.map((n) => n.mac)).toContain(MAC);
    expect(host.status?.hardware?.disks.map((d) => d.sizeBytes)).toContain(DISK_MIB * 2 ** 20);
    expect(host.status?.hardware?.memoryMiB).toBeGreaterThan(256);
  }, 180_000);
});
