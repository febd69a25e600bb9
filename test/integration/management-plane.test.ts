import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../workers/log';
import { startManagementPlane } from '../../workers/management-plane';
import { freePort } from '../../workers/embedded/ports';
import { sharedEnv } from '../helpers/env';
import { projectRoot } from '../../api/project-root';

async function probeIds(plane: Awaited<ReturnType<typeof startManagementPlane>>): Promise<string[]> {
  const ids: string[] = [];
  for await (const wf of plane.client.workflow.list({ query: `WorkflowType = 'planeProbe'` })) ids.push(wf.workflowId);
  return ids.sort();
}

describe('the management plane (npm start)', () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'ironflow-plane-'));
  afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

  it('becomes ready through its own worker, refuses a second plane on its state dir, and a restart keeps the workflows started before', async () => {
    const log = createLogger({ name: 'plane-test', level: 'warn' });
    const cfg = {
      temporalNamespace: 'default',
      kubeconfig: sharedEnv().kubeconfig,
      stateDir,
      temporalPort: await freePort(),
      temporalUiPort: await freePort(),
      kubeApiPort: await freePort(),
      codecPort: await freePort(),
      lab: false,
      labInventory: '',
      pxeHost: '127.0.0.1',
      pxeHttpPort: await freePort(),
      tftpPort: await freePort(),
      agentBootDir: join(projectRoot(__dirname), '.ironflow', 'boot'),
      // The shared kube-apiserver holds other tests' hosts: this plane's bridge must not act on them.
      watchNamespace: `plane-test-${Date.now()}`,
      logLevel: 'warn',
    };
    const first = await startManagementPlane(cfg, log);
    expect(first.summary.temporalEmbedded).toBe(true);
    expect(first.summary.crds).toContain('baremetalhosts.metal3.io');
    const before = await probeIds(first);
    expect(before).toHaveLength(1);
    // Its pid file keeps a second plane off the same state dir (one Temporal database, one etcd).
    await expect(startManagementPlane(cfg, log)).rejects.toThrow(new RegExp(`another Ironflow management plane is running on state dir ${stateDir}: pid ${process.pid} `));
    await first.stop();

    const second = await startManagementPlane(cfg, log);
    try {
      const after = await probeIds(second);
      expect(after).toHaveLength(2);
      expect(after).toEqual(expect.arrayContaining(before));
    } finally {
      await second.stop();
    }
  }, 120_000);
});
