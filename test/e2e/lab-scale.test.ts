/**
 * 50 lab hosts at once through the whole stack: kubectl apply of the lab's
 * manifests -> k8s-bridge -> host workflows (real Temporal) -> real BMC
 * emulators (sushy-tools behind the fault proxy, ipmi_sim) -> simulated
 * servers PXE-booting over real TFTP/HTTP and running the real agent ->
 * available; then an image for every host at once -> provisioned, with the
 * image on every host's disk. Prints both times. The bounds are generous
 * (2 shared cores, other test files running beside it): a host lost to a
 * hang would still fail them, as the agent deadline is 20 minutes.
 * bench/lab-scale.ts is the same run with a per-phase breakdown.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import pLimit from 'p-limit';
import pino from 'pino';
import { projectRoot } from '../../api/project-root';
import { generatedInventory } from '../../lab/inventory';
import type { BootEvent } from '../../lab/sim/server';
import { loadToolPaths } from '../../workers/embedded/tools';
import { startHostStack, type HostStack } from '../../workers/host-stack';
import { kubeTestContext, sharedEnv, temporalTestContext, type KubeTestContext, type TemporalTestContext } from '../helpers/env';
import { startLabBeside, type LabBeside } from '../helpers/lab-beside';
import { registerTestSecret } from '../helpers/secrets';

const N = 50;
const PHASE_LIMIT_MS = 12 * 60_000;
const BMH = { group: 'metal3.io', version: 'v1alpha1', plural: 'baremetalhosts' };

describe(`a lab of ${N} simulated hosts applied and provisioned at once`, () => {
  let kube: KubeTestContext;
  let temporal: TemporalTestContext;
  let stack: HostStack;
  let lab: LabBeside;
  const failedAttempts: string[] = [];
  const inventory = generatedInventory(N);

  beforeAll(async () => {
    kube = await kubeTestContext('scale');
    temporal = await temporalTestContext('scale');
    inventory.namespace = kube.namespace;
    // A fifth behind IPMI, the rest behind Redfish, as a mixed rack.
    for (const s of inventory.servers.slice(N - N / 5)) s.bmc.protocol = 'ipmi';
    for (const s of inventory.servers) s.bmc.password = `scale-${randomBytes(4).toString('hex')}`;
    registerTestSecret(...inventory.servers.map((s) => s.bmc.password));
    const stateDir = join(sharedEnv().stateDir, `scale-${kube.namespace}`);
    const log = pino({ level: 'info' }, pino.destination({ dest: join(sharedEnv().stateDir, 'logs', `scale-${kube.namespace}.log`), sync: false, mkdir: true }));
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
      bmcLoopbackOnly: true,
      log,
    });
    lab = await startLabBeside(stack, {
      inventory,
      stateDir,
      log,
      onEvent: (server: string, e: BootEvent) => {
        if (e.kind === 'netboot-failed') failedAttempts.push(`${server}: ${e.reason}`);
      },
    });
  }, 120_000);
  afterAll(async () => {
    await lab?.stop();
    await stack?.stop();
    await temporal?.close();
    await kube?.cleanup();
  });

  const histogram = async () => {
    const list = (await kube.kc.makeApiClient(CustomObjectsApi).listNamespacedCustomObject({ ...BMH, namespace: kube.namespace })) as { items: Array<{ status?: { provisioning?: { state?: string } } }> };
    const h: Record<string, number> = {};
    for (const i of list.items) h[i.status?.provisioning?.state ?? '(none)'] = (h[i.status?.provisioning?.state ?? '(none)'] ?? 0) + 1;
    return h;
  };
  const waitAll = async (state: string) => {
    const t0 = Date.now();
    let h: Record<string, number> = {};
    while (Date.now() - t0 < PHASE_LIMIT_MS) {
      h = await histogram();
      if (h[state] === N) return (Date.now() - t0) / 1000;
      await sleep(2_000);
    }
    throw new Error(`not all ${N} hosts ${state} after ${PHASE_LIMIT_MS / 60_000} min: ${JSON.stringify(h)}; failed boot attempts: ${failedAttempts.slice(0, 5).join('; ')}`);
  };

  it(`all ${N} become available, then all ${N} provisioned with the image on their disk`, async () => {
    const kubectl = loadToolPaths().kubectl;
    execFileSync(kubectl, ['--kubeconfig', sharedEnv().kubeconfig, 'apply', '-f', lab.lab.manifestsFile], { stdio: 'ignore' });
    const availableS = await waitAll('available');

    const image = Buffer.concat([Buffer.from('IRONFLOW-SCALE-IMAGE\n'), randomBytes(2 ** 20)]);
    writeFileSync(join(stack.provisioning.filesDir, 'scale.img'), image);
    const checksum = createHash('sha256').update(image).digest('hex');
    const custom = kube.kc.makeApiClient(CustomObjectsApi);
    const limit = pLimit(16);
    await Promise.all(
      inventory.servers.map((s) =>
        limit(() =>
          custom.patchNamespacedCustomObject(
            { ...BMH, namespace: kube.namespace, name: s.name, body: { spec: { image: { url: `${stack.provisioning.httpUrl}/files/scale.img`, checksum, checksumType: 'sha256' } } } },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
          ),
        ),
      ),
    );
    const provisionedS = await waitAll('provisioned');
    process.stdout.write(
      `lab-scale: ${N} hosts available ${availableS.toFixed(1)} s after kubectl apply, provisioned ${provisionedS.toFixed(1)} s after the image patch (${(availableS + provisionedS).toFixed(1)} s in all); failed boot attempts retried by the firmware: ${failedAttempts.length}\n`,
    );
    for (const s of inventory.servers) {
      const fd = openSync(lab.lab.member(s.name).sim!.disks.vda!, 'r');
      const head = Buffer.alloc(image.length);
      readSync(fd, head, 0, head.length, 0);
      closeSync(fd);
      expect(head.equals(image)).toBe(true);
    }
  }, 2 * PHASE_LIMIT_MS + 60_000);
});
