/**
 * Simulated servers booting their installed image (lab/sim/os): disks written
 * the way agent/lib/deploy.sh writes them (image at 0, user data header in the
 * last MiB), SimServers powered on with next boot = disk, and the REAL kubectl
 * against the REAL kube-apiserver the control plane starts.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { LabFaultSpec, LabServer } from '../../api/lab';
import { SimServer } from '../../lab/sim/server';
import { LAB_IMAGE_MAGIC } from '../../lab/sim/os/disk';
import { labDiskBytes } from '../../lab/sim/sysroot';
import { loadToolPaths } from '../../workers/embedded/tools';

const run = promisify(execFile);
const MiB = 1024 * 1024;

function labServer(name: string, i: number, faults?: LabFaultSpec[]): LabServer {
  return {
    name, vendor: 'Dell Inc.', model: 'PowerEdge R650', cpus: 2 + i, memoryMiB: 4096 * (i + 1),
    disks: [{ name: 'sda', sizeGiB: 0.0625, serialNumber: `OS-${name}-SDA` }, { name: 'sdb', sizeGiB: 0.0625, serialNumber: `OS-${name}-SDB` }],
    nics: [{ name: 'eth0', mac: `52:54:00:05:00:0${i}` }],
    bmc: { protocol: 'redfish', username: 'admin', password: 'unused' },
    faults,
  };
}

/** What deploy.sh leaves on the root device: the image at 0, user data at size - 1 MiB. */
async function deploy(disk: string, sizeBytes: number, image: Buffer, userData?: string): Promise<void> {
  const fh = await open(disk, 'r+');
  try {
    await fh.write(image, 0, image.length, 0);
    if (userData !== undefined) {
      const data = Buffer.from(userData);
      const header = Buffer.alloc(512);
      header.write(`IRONFLOW-USERDATA 1 ${data.length} ${createHash('sha256').update(data).digest('hex')}\n`, 'latin1');
      await fh.write(Buffer.concat([header, data]), 0, 512 + data.length, sizeBytes - MiB);
    }
  } finally {
    await fh.close();
  }
}

const userData = (role: string, extra = '') => `#cloud-config\nironflow:\n  role: ${role}\n  cluster: wl-1\n  nodeStatusUpdateSeconds: 1\n${extra}`;

interface NodeView {
  metadata: { name: string; labels: Record<string, string> };
  status: { capacity: Record<string, string>; conditions: { type: string; status: string; reason: string }[] };
}

describe('simulated servers boot their installed lab image (real kube-apiserver, real kubectl)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ironflow-lab-os-'));
  const kubeconfig = join(dir, 'clusters', 'wl-1', 'kubeconfig');
  const sims: SimServer[] = [];
  const logs: string[] = [];
  const kubectl = (...args: string[]) => run(loadToolPaths().kubectl, ['--kubeconfig', kubeconfig, '--request-timeout=5s', ...args], { timeout: 15_000 });
  const readyOf = async (name: string) => {
    const { stdout } = await kubectl('get', 'node', name, '-o', 'json').catch(() => ({ stdout: '' }));
    if (!stdout) return undefined;
    return (JSON.parse(stdout) as NodeView).status.conditions?.find((c) => c.type === 'Ready');
  };
  /** Bounded poll: until the node's Ready status is `want`, or the deadline. */
  const waitReady = async (name: string, want: string, timeoutMs: number) => {
    const t0 = Date.now();
    while (Date.now() - t0 < timeoutMs) {
      if ((await readyOf(name))?.status === want) return Date.now() - t0;
      await sleep(250);
    }
    throw new Error(`node ${name} not Ready=${want} after ${timeoutMs} ms; last: ${JSON.stringify(await readyOf(name))}; logs:\n${logs.join('\n')}`);
  };

  const renewTime = async (name: string) =>
    (JSON.parse((await kubectl('get', 'lease', '-n', 'kube-node-lease', name, '-o', 'json')).stdout) as { spec: { renewTime: string } }).spec.renewTime;

  async function bootServer(s: LabServer, image: Buffer, ud?: string, diskIndex = 0): Promise<SimServer> {
    const sim = new SimServer({
      server: s,
      workDir: join(dir, 'servers', s.name),
      // Disk boots never touch the PXE services: closed loopback ports.
      pxe: { httpUrl: 'http://127.0.0.1:9', tftp: { host: '127.0.0.1', port: 9 } },
      powerOffViaBmc: async () => undefined,
      log: (l) => logs.push(l),
    });
    sims.push(sim);
    await sim.init();
    const disk = s.disks[diskIndex]!;
    await deploy(sim.disks[disk.name]!, labDiskBytes(disk.sizeGiB), image, ud);
    sim.onBmcState('on', 'Hdd');
    return sim;
  }

  const image = Buffer.concat([Buffer.from(`${LAB_IMAGE_MAGIC} 1\n`), Buffer.alloc(4096, 0xab)]);

  afterAll(async () => {
    for (const s of sims) await s.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a control plane starts a real kube-apiserver and its own node is Ready (kubectl get nodes)', async () => {
    // The image on the second disk: the root device is the disk holding the image, not the first.
    const cp = await bootServer(labServer('cp-0', 0), image, userData('control-plane'), 1);
    const state = await cp.os!.state;
    expect(state).toMatchObject({ kind: 'running', role: 'control-plane', cluster: 'wl-1', rootDevice: 'sdb', kubeconfigPath: kubeconfig });
    const readyMs = await waitReady('cp-0', 'True', 20_000);
    console.log(`lab-os: apiserver start ${state.kind === 'running' ? state.apiserverStartMs : '?'} ms, cp-0 Ready ${readyMs} ms later`);
    const { stdout } = await kubectl('get', 'nodes');
    expect(stdout).toMatch(/^cp-0\s+Ready\s+control-plane\s/m);
    const node = JSON.parse((await kubectl('get', 'node', 'cp-0', '-o', 'json')).stdout) as NodeView;
    // The apiserver canonicalizes the posted 4096Mi.
    expect(node.status.capacity).toMatchObject({ cpu: '2', memory: '4Gi', pods: '110' });
    // The lease is renewed, not just created.
    const first = await renewTime('cp-0');
    await sleep(2_200);
    expect(await renewTime('cp-0')).not.toBe(first);
  }, 120_000);

  it('workers join the cluster: one Ready, one never Ready, one NotReady after afterSeconds', async () => {
    const t0 = Date.now();
    await bootServer(labServer('w-0', 1), image, userData('worker', '  labels:\n    pool: blue\n'));
    await bootServer(labServer('w-never', 2, [{ fault: 'node-never-ready' }]), image, userData('worker'));
    await bootServer(labServer('w-late', 3, [{ fault: 'node-notready-later', afterSeconds: 3 }]), image, userData('worker'));
    await waitReady('w-0', 'True', 20_000);
    await waitReady('w-late', 'True', 20_000);
    console.log(`lab-os: workers Ready ${Date.now() - t0} ms after power on`);
    const { stdout } = await kubectl('get', 'nodes', '-l', 'pool=blue');
    expect(stdout).toMatch(/^w-0\s+Ready\s/m);
    expect(await readyOf('w-never')).toMatchObject({ status: 'False', reason: 'KubeletNotReady' });
    const lateMs = await waitReady('w-late', 'Unknown', 15_000);
    console.log(`lab-os: w-late NotReady ${Date.now() - t0} ms after power on`);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(3_000);
    expect(lateMs).toBeGreaterThanOrEqual(0);
    expect((await kubectl('get', 'nodes')).stdout).toMatch(/^w-late\s+NotReady\s/m);
    // Never-ready stays so.
    await sleep(1_500);
    expect(await readyOf('w-never')).toMatchObject({ status: 'False' });
  }, 120_000);

  it("a worker's Node reports the Kubernetes version its image says; kubectl drain cordons it and evicts its lab workload Pod", async () => {
    const versioned = Buffer.concat([Buffer.from(`${LAB_IMAGE_MAGIC} 1 kubernetesVersion=v1.34.2\n`), Buffer.alloc(4096, 0xcd)]);
    const w = await bootServer(labServer('w-ver', 8), versioned, userData('worker'));
    expect(await w.os!.state).toMatchObject({ kind: 'running', kubeletVersion: 'v1.34.2' });
    await waitReady('w-ver', 'True', 20_000);
    const version = async (node: string) => (await kubectl('get', 'node', node, '-o', 'jsonpath={.status.nodeInfo.kubeletVersion}')).stdout;
    expect(await version('w-ver')).toBe('v1.34.2');
    expect((await kubectl('get', 'node', 'w-ver')).stdout).toMatch(/^w-ver\s+Ready\s+<none>\s+\S+\s+v1\.34\.2$/m);
    // Negative control: an image that names no version reports the lab default, not v1.34.2.
    expect(await version('w-0')).toBe('v1.37.2-ironflow-lab');

    // The node runs its lab workload Pod (owned by a ReplicaSet, so drain needs no --force).
    const podPhase = async () => (await kubectl('get', 'pod', '-n', 'default', 'lab-workload-w-ver', '-o', 'jsonpath={.status.phase}')).stdout;
    const t0 = Date.now();
    while ((await podPhase().catch(() => '')) !== 'Running' && Date.now() - t0 < 15_000) await sleep(250);
    expect(await podPhase()).toBe('Running');
    const drained = await kubectl('drain', 'w-ver', '--ignore-daemonsets', '--timeout=30s');
    expect(drained.stdout).toContain('pod/lab-workload-w-ver evicted');
    expect(drained.stdout).toContain('node/w-ver drained');
    await expect(podPhase()).rejects.toThrow(/NotFound|not found/);
    expect(logs).toContain('w-ver os: Pod default/lab-workload-w-ver stopped and deleted (evicted or deleted)');
    expect((await kubectl('get', 'node', 'w-ver', '-o', 'jsonpath={.spec.unschedulable}')).stdout).toBe('true');
    // The other workers' Pods were not touched.
    expect(await kubectl('get', 'pod', '-n', 'default', 'lab-workload-w-0', '-o', 'jsonpath={.status.phase}').then((r) => r.stdout)).toBe('Running');
  }, 90_000);

  it('a disk without a lab image boots nothing and does not crash', async () => {
    const other = await bootServer(labServer('e2e-img', 4), Buffer.from('IRONFLOW-E2E-IMAGE arbitrary bytes\n'), userData('worker'));
    expect(await other.os!.state).toMatchObject({ kind: 'none' });
    const blank = await bootServer(labServer('blank', 5), Buffer.alloc(0));
    expect(await blank.os!.state).toMatchObject({ kind: 'none', reason: expect.stringContaining('no disk starts with') });
    const noUd = await bootServer(labServer('no-ud', 6), image);
    expect(await noUd.os!.state).toMatchObject({ kind: 'none', reason: expect.stringContaining('no user data') });
    // A torn user data write: the header's sha256 does not match the bytes; the bytes are not echoed.
    const torn = await bootServer(labServer('torn', 7), image, userData('worker'));
    const fh = await open(torn.disks.sda!, 'r+');
    await fh.write(Buffer.from('X'), 0, 1, labDiskBytes(0.0625) - MiB + 520);
    await fh.close();
    await torn.os!.stop();
    torn.onBmcState('off', 'Hdd');
    torn.onBmcState('on', 'Hdd');
    const tornState = await torn.os!.state;
    expect(tornState).toMatchObject({ kind: 'none', reason: expect.stringContaining('does not match its header') });
    expect(JSON.stringify(tornState)).not.toContain('cloud-config');
  });

  it('power off stops a worker heartbeat: its lease is no longer renewed', async () => {
    const w = sims.find((s) => s.name === 'w-0')!;
    const os = w.os!;
    const before = await renewTime('w-0');
    await sleep(1_200);
    expect(await renewTime('w-0')).not.toBe(before);
    w.onBmcState('off', 'Hdd');
    await os.stop();
    const last = await renewTime('w-0');
    await sleep(2_200);
    expect(await renewTime('w-0')).toBe(last);
    expect(await renewTime('w-never')).not.toBe(last); // the others still heartbeat
  }, 30_000);

  it('power off stops the control plane: its kubeconfig no longer answers', async () => {
    const cp = sims.find((s) => s.name === 'cp-0')!;
    const os = cp.os!;
    cp.onBmcState('off', 'Hdd');
    expect(cp.os).toBeUndefined();
    await os.stop(); // already stopping: waits for it
    await expect(kubectl('get', 'nodes')).rejects.toThrow(/refused|unable to connect|Unable to connect/i);
  }, 60_000);

  it('powered on again, the control plane keeps its objects and the workers find its new port', async () => {
    const cp = sims.find((s) => s.name === 'cp-0')!;
    const oldServer = /server: (\S+)/.exec(await readFile(kubeconfig, 'utf8'))![1];
    cp.onBmcState('on', 'Hdd');
    expect(await cp.os!.state).toMatchObject({ kind: 'running' });
    expect(/server: (\S+)/.exec(await readFile(kubeconfig, 'utf8'))![1]).not.toBe(oldServer);
    // etcd kept w-0 (powered off, last posted Ready); w-never's agent re-read the kubeconfig and heartbeats again.
    expect((await kubectl('get', 'nodes')).stdout).toMatch(/^w-0\s/m);
    const t0 = Date.now();
    let before: string | undefined;
    while (Date.now() - t0 < 20_000) {
      const now = await renewTime('w-never').catch(() => undefined);
      if (before && now && now !== before) break;
      before = now;
      await sleep(500);
    }
    expect(Date.now() - t0).toBeLessThan(20_000);
    console.log(`lab-os: w-never heartbeat resumed ${Date.now() - t0} ms after the control plane restarted`);
  }, 90_000);
});
