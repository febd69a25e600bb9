/**
 * The embedded plane is honest about its parts and heals them: when the
 * Temporal dev server or etcd dies, or kube-apiserver stops answering, the
 * plane logs an error, its health table says DOWN, and it starts the part
 * again on the same data and port while it keeps running. Also: everything
 * it writes locally is private (files 0600, folders 0700).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { randomUUID } from 'node:crypto';
import { createLogger } from '../../workers/log';
import { startManagementPlane, type ManagementPlane } from '../../workers/management-plane';
import { statePaths, type PlaneConfig } from '../../workers/config';
import { freePort } from '../../workers/embedded/ports';
import { stillRuns, identify } from '../../workers/embedded/proc';
import { PLANE_PROBE_WORKFLOW_PREFIX, TASK_QUEUES } from '../../api/names';
import { projectRoot } from '../../api/project-root';
import { kubeApiTestPort } from '../helpers/ports';

const mode = (p: string) => statSync(p).mode & 0o777;

describe('the embedded plane supervises its parts', () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'ironflow-supervise-'));
  const logFile = join(stateDir, 'test-plane.log');
  let plane: ManagementPlane;
  let kc: KubeConfig;
  afterAll(async () => {
    await plane?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }, 60_000);

  const part = (name: string) => {
    const p = plane.processes.find((x) => x.name === name);
    if (!p) throw new Error(`no part ${name}: ${plane.processes.map((x) => x.name).join(', ')}`);
    return p;
  };
  /** Restart counts before each kill: a loaded machine may have restarted a part already (a missed probe). */
  const restartsNow = (name: string) => plane.health.get(name)?.restarts ?? 0;
  /** Waits until the part was restarted `n` more times than `since` and is ok again. */
  const restartedTimes = async (name: string, n: number, timeoutMs: number, since = 0) => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const h = plane.health.get(name);
      if (h && h.restarts >= since + n && h.state === 'ok') return h;
      await sleep(200);
    }
    throw new Error(`${name} not restarted ${n} time(s) within ${timeoutMs} ms: ${JSON.stringify(plane.health.get(name))}`);
  };
  const probe = async () => {
    const nonce = randomUUID();
    const r = await plane.client.workflow.execute('planeProbe', { taskQueue: TASK_QUEUES.lifecycle, workflowId: `${PLANE_PROBE_WORKFLOW_PREFIX}-${nonce}`, args: [{ nonce }], workflowExecutionTimeout: '1 minute' });
    return (r as { nonce: string }).nonce === nonce;
  };

  beforeAll(async () => {
    const cfg: PlaneConfig = {
      temporalNamespace: 'default',
      stateDir,
      temporalPort: await freePort(),
      temporalUiPort: await freePort(),
      kubeApiPort: await kubeApiTestPort(),
      codecPort: await freePort(),
      pxeHost: '127.0.0.1',
      pxeHttpPort: await freePort(),
      tftpPort: await freePort(),
      agentBootDir: join(projectRoot(__dirname), '.ironflow', 'boot'),
      watchNamespace: 'supervision-test',
      bmcLoopbackOnly: true,
      logLevel: 'info',
    };
    plane = await startManagementPlane(cfg, createLogger({ name: 'supervision-test', level: 'info', destination: logFile }), {
      supervision: { probeEveryMs: 1_000, failuresBeforeRestart: 2, maxBackoffMs: 2_000 },
    });
    kc = new KubeConfig();
    kc.loadFromFile(statePaths(stateDir).kubeconfig);
    expect(plane.summary.health).toMatch(/temporal dev server ok, etcd ok, kube-apiserver ok, kube-controller-manager ok/);
  }, 120_000);

  it('restarts a killed Temporal dev server on the same database; workflows run again', async () => {
    const restartsBefore = restartsNow('temporal dev server');
    const old = part('temporal dev server').pid;
    const before = identify(old)!;
    process.kill(old, 'SIGKILL');
    const h = await restartedTimes('temporal dev server', 1, 60_000, restartsBefore);
    expect(stillRuns(before)).toBe(false);
    expect(part('temporal dev server').pid).not.toBe(old);
    expect(h.detail).toMatch(/^restarted \(pid \d+/);
    // The plane said so as an error, naming the part and what happened.
    expect(readFileSync(logFile, 'utf8')).toMatch(new RegExp(`"level":50.*temporal dev server is DOWN: pid ${old} exited \\(signal SIGKILL\\); restarting it on the same data`));
    // Its own worker reconnects: a probe workflow goes through again.
    await expect(probe()).resolves.toBe(true);
  }, 120_000);

  it('restarts a killed etcd on the same data: objects written before are still there', async () => {
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'before-etcd-kill' }, data: { a: '1' } } });
    const etcdRestarts = restartsNow('etcd');
    process.kill(part('etcd').pid, 'SIGKILL');
    await restartedTimes('etcd', 1, 60_000, etcdRestarts);
    let data: Record<string, string> | undefined;
    for (let i = 0; i < 60 && !data; i++) {
      data = await core.readNamespacedConfigMap({ namespace: 'default', name: 'before-etcd-kill' }).then((c) => c.data, () => undefined);
      if (!data) await sleep(500);
    }
    expect(data).toEqual({ a: '1' });
  }, 120_000);

  it('kills and restarts a kube-apiserver that stops answering (SIGSTOP)', async () => {
    const apiRestarts = restartsNow('kube-apiserver');
    const hung = part('kube-apiserver').pid;
    const id = identify(hung)!;
    process.kill(hung, 'SIGSTOP');
    await restartedTimes('kube-apiserver', 1, 90_000, apiRestarts);
    expect(stillRuns(id)).toBe(false);
    expect(readFileSync(logFile, 'utf8')).toMatch(new RegExp(`kube-apiserver is DOWN: pid ${hung} stopped answering; killing it to restart`));
    const ns = await kc.makeApiClient(CoreV1Api).readNamespace({ name: 'default' });
    expect(ns.metadata?.name).toBe('default');
    const file = JSON.parse(readFileSync(statePaths(stateDir).health, 'utf8')) as Record<string, { state: string; restarts: number }>;
    expect(file['kube-apiserver']).toMatchObject({ state: 'ok', restarts: 1 });
  }, 150_000);

  it('keeps its local data private: files 0600, folders 0700', () => {
    const paths = statePaths(stateDir);
    expect(mode(stateDir)).toBe(0o700);
    for (const d of [paths.data, paths.logs, paths.run, paths.kubeData]) expect([d, mode(d).toString(8)]).toEqual([d, '700']);
    const files = [paths.temporalDb, paths.kubeconfig, paths.codecKey, paths.health, ...readdirSync(paths.logs).map((f) => join(paths.logs, f))];
    expect(files.some((f) => f.endsWith('.log'))).toBe(true);
    for (const f of files) expect([f, mode(f).toString(8)]).toEqual([f, '600']);
  });
});
