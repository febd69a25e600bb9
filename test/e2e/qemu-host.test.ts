/**
 * The whole path with a real machine: kubectl apply of a BareMetalHost whose
 * BMC fronts a QEMU VM -> k8s-bridge -> host workflow -> IPMI (ipmitool) ->
 * DHCP from Ironflow's dnsmasq in a network namespace -> iPXE -> the agent
 * ramdisk on a real (emulated) CPU -> inspection -> status on the real
 * kube-apiserver.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execFileSync } from 'node:child_process';
import { CustomObjectsApi } from '@kubernetes/client-node';
import { loadToolPaths } from '../../workers/embedded/tools';
import pino from 'pino';
import { randomBytes } from 'node:crypto';
import { projectRoot } from '../../api/project-root';
import { freePort } from '../../workers/embedded/ports';
import { startHostStack, type HostStack } from '../../workers/host-stack';
import { kubeTestContext, sharedEnv, temporalTestContext, type KubeTestContext, type TemporalTestContext } from '../helpers/env';
import { registerTestSecret } from '../helpers/secrets';
import { startLabBeside, type LabBeside } from '../helpers/lab-beside';

const MAC = '52:54:00:1f:e2:01';
const DISK_MIB = 96;

describe('a BareMetalHost backed by a QEMU machine', () => {
  const cleanups: Array<() => Promise<void>> = [];
  let kube: KubeTestContext;
  let temporal: TemporalTestContext;
  let stack: HostStack;
  let beside: LabBeside;
  const password = `qemu-${randomBytes(5).toString('hex')}`;

  beforeAll(async () => {
    registerTestSecret(password);
    kube = await kubeTestContext('qemu');
    temporal = await temporalTestContext('qemu');
    // A lab beside the stack, with one kind: qemu server: the lab makes the
    // namespace, the VM and its BMC; Ironflow's DHCP serves there; iPXE
    // scripts point at whatever address the machine reached (the relayed gateway).
    const log = pino({ level: 'debug' }, pino.destination({ dest: join(sharedEnv().stateDir, 'logs', `qemu-host-${kube.namespace}.log`), sync: true, mkdir: true }));
    const stateDir = join(sharedEnv().stateDir, `qemu-${kube.namespace}`);
    stack = await startHostStack({
      kc: kube.kc,
      client: temporal.client,
      connection: temporal.nativeConnection,
      namespace: temporal.namespace,
      taskQueue: temporal.taskQueue,
      stateDir,
      agentBootDir: join(projectRoot(__dirname), '.ironflow', 'boot'),
      provisioning: { bindHost: '127.0.0.1', httpPort: await freePort(), tftpPort: 0 },
      watchNamespace: kube.namespace,
      bmcLoopbackOnly: true,
      log,
    });
    cleanups.push(() => stack.stop());
    beside = await startLabBeside(stack, {
      inventory: {
        namespace: kube.namespace,
        servers: [{ name: 'vm-1', kind: 'qemu', vendor: 'QEMU', model: 'pc', cpus: 1, memoryMiB: 512, disks: [{ name: 'vda', sizeGiB: DISK_MIB / 1024, serialNumber: 'QEMU-E2E-1' }], nics: [{ name: 'eth0', mac: MAC }], bmc: { protocol: 'ipmi', username: 'admin', password } }],
      },
      stateDir,
      log,
    });
    cleanups.push(() => beside.stop());
  }, 90_000);

  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await temporal?.close();
    await kube?.cleanup();
  }, 60_000);

  it('is registered and inspected over PXE: status shows the VM\'s real MAC and disk size', async () => {
    const custom = kube.kc.makeApiClient(CustomObjectsApi);
    const t0 = Date.now();
    // The lab's own manifests (Secret + BareMetalHost), as an operator applies them.
    execFileSync(loadToolPaths().kubectl, ['--kubeconfig', sharedEnv().kubeconfig, 'apply', '-f', beside.lab.manifestsFile]);
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
