/**
 * The walking skeleton, end to end on real parts: kubectl apply of the lab's
 * BareMetalHost + Secret manifests -> k8s-bridge -> host workflow on the real
 * Temporal server -> Redfish (sushy-tools) / IPMI (ipmi_sim) -> simulated
 * servers that PXE-boot over real HTTP + TFTP and run the real agent script
 * -> status on the real kube-apiserver.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { openSync, readFileSync, readSync, closeSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { LabInventory } from '../../api/lab';
import { projectRoot } from '../../api/project-root';
import { loadToolPaths } from '../../workers/embedded/tools';
import { registerTestSecret } from '../helpers/secrets';
import { startHostStack, type HostStack } from '../../workers/host-stack';
import { startLabBeside, type LabBeside } from '../helpers/lab-beside';
import pino from 'pino';
import { kubeTestContext, sharedEnv, temporalTestContext, type KubeTestContext, type TemporalTestContext } from '../helpers/env';

const BMH = { group: 'metal3.io', version: 'v1alpha1', plural: 'baremetalhosts' };
/** Cloud-init user data with a marker the secret scan looks for everywhere. */
const USER_DATA = `#cloud-config\nruncmd: [echo e2e-user-data-${randomBytes(8).toString('hex')}]\n`;

function readHead(file: string, n: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(n);
    readSync(fd, buf, 0, n, 0);
    return buf;
  } finally {
    closeSync(fd);
  }
}

describe('a BareMetalHost from kubectl apply through the lab (real Temporal, kube-apiserver, BMCs, PXE, agent)', () => {
  let kube: KubeTestContext;
  let temporal: TemporalTestContext;
  let stack: HostStack;
  let beside: LabBeside;
  let custom: CustomObjectsApi;
  const kubectl = (...args: string[]) => execFileSync(loadToolPaths().kubectl, ['--kubeconfig', sharedEnv().kubeconfig, ...args], { encoding: 'utf8' });

  beforeAll(async () => {
    kube = await kubeTestContext('e2e');
    temporal = await temporalTestContext('e2e');
    custom = kube.kc.makeApiClient(CustomObjectsApi);
    const inventory: LabInventory = {
      namespace: kube.namespace,
      servers: [
        {
          name: 'rf-1', vendor: 'Dell Inc.', model: 'PowerEdge R650', cpus: 6, memoryMiB: 12288,
          disks: [{ name: 'sda', sizeGiB: 0.0625, serialNumber: 'E2E-RF-SDA', rotational: false }, { name: 'sdb', sizeGiB: 0.125, serialNumber: 'E2E-RF-SDB', rotational: true }],
          nics: [{ name: 'eth0', mac: '52:54:00:e2:e0:01' }],
          bmc: { protocol: 'redfish', username: 'admin', password: `rf-${randomBytes(6).toString('hex')}` },
        },
        {
          name: 'ipmi-1', vendor: 'Supermicro', model: 'SYS-1029P', cpus: 2, memoryMiB: 4096,
          disks: [{ name: 'vda', sizeGiB: 0.0625, serialNumber: 'E2E-IPMI-VDA', rotational: false }],
          nics: [{ name: 'eth0', mac: '52:54:00:e2:e0:02' }],
          bmc: { protocol: 'ipmi', username: 'admin', password: `ip-${randomBytes(6).toString('hex')}` },
        },
      ],
    };
    registerTestSecret(...inventory.servers.map((s) => s.bmc.password), USER_DATA);
    const stateDir = join(sharedEnv().stateDir, `e2e-${kube.namespace}`);
    // Kept with the other server logs (IRONFLOW_KEEP_TEST_STATE=1) for post-mortems.
    const log = pino({ level: 'debug' }, pino.destination({ dest: join(sharedEnv().stateDir, 'logs', `e2e-${kube.namespace}.log`), sync: true, mkdir: true }));
    stack = await startHostStack({
      kc: kube.kc,
      client: temporal.client,
      connection: temporal.nativeConnection,
      namespace: temporal.namespace,
      taskQueue: temporal.taskQueue,
      stateDir,
      agentBootDir: join(projectRoot(__dirname), '.ironflow', 'boot'),
      provisioning: { bindHost: '127.0.0.1', httpPort: 0, tftpPort: 0 },
      watchNamespace: kube.namespace,
      // Metal3's examples name BMCs on 192.168.122.1: never reached from a test.
      bmcLoopbackOnly: true,
      log,
    });
    // The lab beside the stack, as npm start runs it beside the plane.
    beside = await startLabBeside(stack, { inventory, stateDir, log });
  });
  afterAll(async () => {
    await beside?.stop();
    await stack?.stop();
    await temporal?.close();
    await kube?.cleanup();
  });

  const getHost = async (name: string) =>
    (await custom.getNamespacedCustomObject({ ...BMH, namespace: kube.namespace, name })) as {
      metadata: { finalizers?: string[] };
      status?: { provisioning?: { state?: string; image?: { url: string } }; hardware?: { cpu: { count: number }; memoryMiB: number; disks: Array<{ name: string; serialNumber: string; sizeBytes: number; rotational: boolean }>; nics: Array<{ mac: string }> }; errorType?: string; errorMessage?: string; poweredOn?: boolean; erase?: Array<{ disk: string; result: string; verified: boolean }> };
    };
  const waitForState = async (name: string, state: string, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    let last: Awaited<ReturnType<typeof getHost>> | undefined;
    while (Date.now() < deadline) {
      last = await getHost(name);
      if (last.status?.provisioning?.state === state) return last;
      await sleep(500);
    }
    const wf = await temporal.client.workflow
      .getHandle(`host/${kube.namespace}/${name}`)
      .query<{ waitingFor?: string }>('hostStatus')
      .catch((err: Error) => ({ waitingFor: `(query failed: ${err.message})` }));
    throw new Error(`${name} did not reach ${state} in ${timeoutMs} ms; workflow waits for: ${wf.waitingFor}; last status ${JSON.stringify(last?.status)}`);
  };
  const patchSpec = (name: string, spec: Record<string, unknown>) =>
    custom.patchNamespacedCustomObject({ ...BMH, namespace: kube.namespace, name, body: { spec } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));

  it('registers, inspects over PXE and reports real hardware details for a Redfish and an IPMI server', async () => {
    const t0 = Date.now();
    expect(kubectl('apply', '-f', beside.lab.manifestsFile)).toContain('baremetalhost.metal3.io/rf-1 created');
    const [rf, ipmi] = await Promise.all([waitForState('rf-1', 'available', 120_000), waitForState('ipmi-1', 'available', 120_000)]);
    process.stdout.write(`e2e: both hosts available ${((Date.now() - t0) / 1000).toFixed(1)} s after kubectl apply\n`);
    expect(rf.status?.hardware?.cpu.count).toBe(6);
    expect(rf.status?.hardware?.memoryMiB).toBe(12288);
    expect(rf.status?.hardware?.disks.map((d) => [d.name, d.serialNumber, d.sizeBytes, d.rotational])).toEqual([
      ['sda', 'E2E-RF-SDA', 64 * 2 ** 20, false],
      ['sdb', 'E2E-RF-SDB', 128 * 2 ** 20, true],
    ]);
    expect(rf.status?.hardware?.nics.map((n) => n.mac)).toContain('52:54:00:e2:e0:01');
    expect(ipmi.status?.hardware?.cpu.count).toBe(2);
    expect(ipmi.status?.hardware?.disks[0]?.serialNumber).toBe('E2E-IPMI-VDA');
    expect(rf.metadata.finalizers).toContain('ironflow.dev/hardware-safe');
    expect(kubectl('get', 'bmh', '-n', kube.namespace)).toMatch(/rf-1\s+available\s+(true|false)/);
  }, 180_000);

  it('provisions an image (checksum verified on the disk), then deprovisions and erases it', async () => {
    const image = Buffer.concat([Buffer.from('IRONFLOW-E2E-IMAGE\n'), randomBytes(2 * 2 ** 20)]);
    writeFileSync(join(stack.provisioning.filesDir, 'e2e.img'), image);
    const checksum = createHash('sha256').update(image).digest('hex');
    await kube.kc.makeApiClient(CoreV1Api).createNamespacedSecret({ namespace: kube.namespace, body: { metadata: { name: 'rf-1-user-data' }, stringData: { userData: USER_DATA } } });
    await patchSpec('rf-1', {
      image: { url: `${stack.provisioning.httpUrl}/files/e2e.img`, checksum, checksumType: 'sha256' },
      rootDeviceHints: { serialNumber: 'E2E-RF-SDB' },
      userData: { name: 'rf-1-user-data' },
    });
    const provisioned = await waitForState('rf-1', 'provisioned', 150_000);
    expect(provisioned.status?.provisioning?.image?.url).toContain('e2e.img');
    const disk = beside.lab.member('rf-1').sim!.disks.sdb!;
    expect(readHead(disk, image.length).equals(image)).toBe(true);
    // The agent put the user data in the root device's last MiB (agent/README.md).
    expect(readFileSync(disk).subarray(-(2 ** 20)).toString('latin1')).toContain(USER_DATA);

    await patchSpec('rf-1', { image: null });
    const back = await waitForState('rf-1', 'available', 150_000);
    expect(back.status?.erase?.map((e) => [e.disk, e.result, e.verified])).toEqual(expect.arrayContaining([['sdb', 'ok', true]]));
    // metadata erase zeroes the start of every disk: the image's first MiB is gone.
    expect(readHead(disk, 2 ** 20).equals(Buffer.alloc(2 ** 20))).toBe(true);
  }, 330_000);

  it("puts Metal3's example host with an empty password into registration error, naming the Secret, and nothing else", async () => {
    const manifest = join(projectRoot(__dirname), '..', 'shared', 'testdata', 'manifests', 'metal3', 'bmo-example-host-bad-credentials.yaml');
    kubectl('apply', '-n', kube.namespace, '-f', manifest);
    const deadline = Date.now() + 30_000;
    let host = await getHost('example-baremetalhost');
    while (host.status?.errorType !== 'registration error' && Date.now() < deadline) {
      await sleep(300);
      host = await getHost('example-baremetalhost');
    }
    expect(host.status?.errorType).toBe('registration error');
    expect(host.status?.errorMessage).toContain(`${kube.namespace}/example-baremetalhost-secret-no-password has an empty or missing "password"`);
    expect(host.status?.provisioning?.state).toBe('registering');
    // The lab hosts were not disturbed.
    expect((await getHost('rf-1')).status?.provisioning?.state).toBe('available');
  }, 60_000);

  it('holds a deleted host until it is powered off, then releases it', async () => {
    await patchSpec('ipmi-1', { online: true });
    const sim = beside.lab.member('ipmi-1').sim!;
    for (let i = 0; i < 100 && !sim.poweredOn; i++) await sleep(200);
    expect(sim.poweredOn).toBe(true);
    kubectl('delete', 'bmh', 'ipmi-1', '-n', kube.namespace, '--wait=false');
    const deadline = Date.now() + 60_000;
    let gone = false;
    while (!gone && Date.now() < deadline) {
      gone = await getHost('ipmi-1').then(() => false, (err: { code?: number }) => err.code === 404);
      if (!gone) await sleep(500);
    }
    expect(gone).toBe(true);
    // The finalizer was released only after the server was powered off.
    expect(sim.poweredOn).toBe(false);
  }, 90_000);
});
