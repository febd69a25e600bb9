/**
 * Kill -9 everything `npm start` runs (its process group: launcher, plane
 * with worker, PXE services and bridge, the lab and its emulators) in the
 * middle of provisioning, start it again, and the host still reaches
 * provisioned: the workflow resumes where it was, the
 * interrupted activity is retried (attempt 2 in the history), and the image
 * was written once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createWriteStream, mkdirSync, openSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import type { LabInventory } from '../../api/lab';
import { projectRoot } from '../../api/project-root';
import { freePort } from '../../workers/embedded/ports';
import { kubeTestContext, sharedEnv, type KubeTestContext } from '../helpers/env';
import { registerTestSecret } from '../helpers/secrets';
import { Client, Connection } from '@temporalio/client';
import { execFileSync } from 'node:child_process';
import { loadToolPaths } from '../../workers/embedded/tools';

const BMH = { group: 'metal3.io', version: 'v1alpha1', plural: 'baremetalhosts' };
const root = projectRoot(__dirname);

describe('killing the plane mid-provisioning', () => {
  let kube: KubeTestContext;
  let connection: Connection;
  let client: Client;
  let child: ChildProcess | undefined;
  const env = sharedEnv();
  const stateDir = join(env.stateDir, `kill-${Date.now()}`);
  let args: string[];
  let starts = 0;

  const startPlane = async (): Promise<ChildProcess> => {
    const log = createWriteStream(join(env.stateDir, 'logs', `kill-plane-${++starts}.log`));
    // npm start's launcher (plane + lab side by side), leading its own process group like a terminal job.
    const p = spawn(process.execPath, [join(root, 'dist', 'scripts', 'start.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, IRONFLOW_LOG_LEVEL: 'debug' }, detached: true });
    p.stdout!.pipe(log);
    p.stderr!.pipe(log);
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('plane not ready in 60 s')), 60_000);
      p.stdout!.on('data', (c: Buffer) => {
        if (!c.toString().includes('management plane is ready')) return;
        clearTimeout(t);
        resolve();
      });
      p.once('exit', (code) => (clearTimeout(t), reject(new Error(`plane exited with ${code} before ready`))));
    });
    return p;
  };

  beforeAll(async () => {
    kube = await kubeTestContext('kill');
    connection = await Connection.connect({ address: env.temporalAddress });
    client = new Client({ connection, namespace: env.temporalNamespace });
    mkdirSync(stateDir, { recursive: true });
    const inventory: LabInventory = {
      namespace: kube.namespace,
      servers: [
        {
          name: 'kill-1', vendor: 'Dell Inc.', model: 'R650', cpus: 2, memoryMiB: 2048,
          disks: [{ name: 'sda', sizeGiB: 0.0625, serialNumber: 'KILL-SDA', rotational: false }],
          nics: [{ name: 'eth0', mac: '52:54:00:e2:ee:01' }],
          bmc: { protocol: 'redfish', username: 'admin', password: `kill-${randomBytes(6).toString('hex')}` },
        },
      ],
    };
    registerTestSecret(inventory.servers[0]!.bmc.password);
    const inventoryFile = join(stateDir, 'inventory.yaml');
    writeFileSync(inventoryFile, stringify(inventory));
    // Fixed ports across the two starts, as a real plane has: the BMC address in the BareMetalHost must stay valid.
    args = [
      '--temporal-address', env.temporalAddress,
      '--kubeconfig', env.kubeconfig,
      '--state-dir', stateDir,
      '--watch-namespace', kube.namespace,
      '--lab-inventory', inventoryFile,
      '--lab-base-port', String(await freePort()),
      '--pxe-http-port', String(await freePort()),
      '--tftp-port', String(await freePort()),
      '--codec-port', String(await freePort()),
      '--agent-boot-dir', join(root, '.ironflow', 'boot'),
      '--bmc-loopback-only', 'yes',
    ];
  });
  afterAll(async () => {
    if (child?.pid && child.exitCode === null) process.kill(-child.pid, 'SIGKILL');
    await connection?.close();
    await kube?.cleanup();
  });

  it('resumes after kill -9: the host reaches provisioned, the image is written once, the history shows the retry', async () => {
    child = await startPlane();
    const custom = kube.kc.makeApiClient(CustomObjectsApi);
    const kubectl = (...a: string[]) => execFileSync(loadToolPaths().kubectl, ['--kubeconfig', env.kubeconfig, ...a], { encoding: 'utf8' });
    kubectl('apply', '-f', join(stateDir, 'lab', 'hosts.yaml'));
    const state = async () => ((await custom.getNamespacedCustomObject({ ...BMH, namespace: kube.namespace, name: 'kill-1' })) as { status?: { provisioning?: { state?: string } } }).status?.provisioning?.state;
    for (let i = 0; i < 120 && (await state()) !== 'available'; i++) await sleep(500);
    expect(await state()).toBe('available');

    const image = Buffer.concat([Buffer.from('KILL-TEST-IMAGE\n'), randomBytes(2 ** 20)]);
    mkdirSync(join(stateDir, 'pxe', 'files'), { recursive: true });
    writeFileSync(join(stateDir, 'pxe', 'files', 'kill.img'), image);
    const checksum = createHash('sha256').update(image).digest('hex');
    const httpPort = args[args.indexOf('--pxe-http-port') + 1];
    await custom.patchNamespacedCustomObject(
      { ...BMH, namespace: kube.namespace, name: 'kill-1', body: { spec: { online: true, image: { url: `http://127.0.0.1:${httpPort}/files/kill.img`, checksum } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );

    // Wait until the image is written and the host is being rebooted into it, then kill -9 the plane.
    const handle = client.workflow.getHandle(`host/${kube.namespace}/kill-1`);
    let killedDuring = '';
    for (let i = 0; i < 600 && !killedDuring; i++) {
      // Started events are only written when an activity ends: ask for the pending ones instead.
      const pending = (await handle.describe()).raw.pendingActivities ?? [];
      if (pending.some((a) => a.activityType?.name === 'bmcReboot')) {
        process.kill(-child.pid!, 'SIGKILL');
        killedDuring = 'bmcReboot';
      } else await sleep(50);
    }
    expect(killedDuring).toBe('bmcReboot');
    await new Promise((r) => child!.once('exit', r));

    child = await startPlane();
    for (let i = 0; i < 240 && (await state()) !== 'provisioned'; i++) await sleep(500);
    expect(await state()).toBe('provisioned');

    const events = (await handle.fetchHistory()).events ?? [];
    const reboot = events.filter((e) => e.activityTaskStartedEventAttributes).map((e) => e.activityTaskStartedEventAttributes!);
    // The interrupted reboot was retried on the new worker (attempt 2, after its heartbeat timed out).
    expect(reboot.some((a) => (a.attempt ?? 1) >= 2)).toBe(true);
    const deploys = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'startAgentSession').length;
    expect(deploys).toBe(2); // one inspect, one deploy: the image was written once
    const disk = join(stateDir, 'lab', 'servers', 'kill-1', 'sysroot', 'dev', 'sda');
    const head = Buffer.alloc(image.length);
    const fd = openSync(disk, 'r');
    readSync(fd, head, 0, head.length, 0);
    closeSync(fd);
    expect(head.equals(image)).toBe(true);
    child.kill('SIGINT');
    await new Promise((r) => child!.once('exit', r));
    child = undefined;
  }, 300_000);
});
