/** The resumable watcher against the real kube-apiserver: resume, reconnect, 410 relist. */
import { setTimeout as sleep } from 'node:timers/promises';
import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import pino from 'pino';
import { ResourceWatcher, type KubeObject, type WatchEventType } from '../../k8s-bridge/watch';
import { kubeTestContext, type KubeTestContext } from '../helpers/env';

const BMH = { group: 'metal3.io', version: 'v1alpha1', plural: 'baremetalhosts' };
const log = pino({ level: process.env.IRONFLOW_LOG_LEVEL ?? 'silent' });
const host = (name: string) => ({ apiVersion: 'metal3.io/v1alpha1', kind: 'BareMetalHost', metadata: { name }, spec: { online: true, bmc: { address: 'ipmi://127.0.0.1', credentialsName: 'c' } } });

async function until(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('ResourceWatcher', () => {
  let kube: KubeTestContext;
  let custom: CustomObjectsApi;
  beforeAll(async () => {
    kube = await kubeTestContext('bridge-watch');
    custom = kube.kc.makeApiClient(CustomObjectsApi);
  });
  afterAll(async () => kube?.cleanup());

  it('delivers every change exactly once, in order, across server-side watch timeouts (resumes from the last resourceVersion)', async () => {
    await custom.createNamespacedCustomObject({ ...BMH, namespace: kube.namespace, body: host('w-0') });
    const events: { type: WatchEventType; name: string; rv: string; description?: string }[] = [];
    let syncs = 0;
    const watcher = new ResourceWatcher<KubeObject & { spec?: { description?: string } }>({
      kc: kube.kc,
      resource: BMH,
      namespace: kube.namespace,
      log,
      watchTimeoutSeconds: 1, // the server closes each watch after 1 s: many reconnections below
      onEvent: (type, o) => events.push({ type, name: o.metadata.name ?? '', rv: o.metadata.resourceVersion ?? '', description: o.spec?.description }),
      onSynced: () => syncs++,
    });
    watcher.start();
    await until('initial list', () => syncs === 1);
    // Changes spread over ~4 s, i.e. over several watch connections.
    for (let i = 1; i <= 20; i++) {
      await custom.patchNamespacedCustomObject(
        { ...BMH, namespace: kube.namespace, name: 'w-0', body: { spec: { description: `edit ${i}` } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      await sleep(200);
    }
    await custom.deleteNamespacedCustomObject({ ...BMH, namespace: kube.namespace, name: 'w-0' });
    await until('delete event', () => events.some((e) => e.type === 'DELETED'));
    await watcher.stop();
    expect(syncs).toBe(1); // resumed every time, never relisted
    expect(events.map((e) => e.type)).toEqual(['ADDED', ...Array(20).fill('MODIFIED'), 'DELETED']);
    expect(events.filter((e) => e.type === 'MODIFIED').map((e) => e.description)).toEqual(Array.from({ length: 20 }, (_, i) => `edit ${i + 1}`));
  });

  it('relists on 410 Gone when asked to resume from a resourceVersion the server no longer has', async () => {
    await custom.createNamespacedCustomObject({ ...BMH, namespace: kube.namespace, body: host('g-1') });
    await custom.createNamespacedCustomObject({ ...BMH, namespace: kube.namespace, body: host('g-2') });
    const seen = new Set<string>();
    let syncs = 0;
    const watcher = new ResourceWatcher<KubeObject>({
      kc: kube.kc,
      resource: BMH,
      namespace: kube.namespace,
      log,
      resumeFrom: '1', // long gone from the watch cache
      onEvent: (_t, o) => seen.add(o.metadata.name ?? ''),
      onSynced: () => syncs++,
    });
    watcher.start();
    await until('relist after 410', () => syncs === 1);
    expect([...seen].sort()).toEqual(['g-1', 'g-2']);
    expect(Number(watcher.lastResourceVersion)).toBeGreaterThan(1);
    // And it keeps watching after the relist.
    await custom.createNamespacedCustomObject({ ...BMH, namespace: kube.namespace, body: host('g-3') });
    await until('g-3 after relist', () => seen.has('g-3'));
    await watcher.stop();
  });

  it('keeps retrying with backoff while the API is unreachable, and stops promptly', async () => {
    const kc = new (kube.kc.constructor as new () => typeof kube.kc)();
    kc.loadFromOptions({
      clusters: [{ name: 'down', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
      users: [{ name: 'u', token: 'x' }],
      contexts: [{ name: 'down', cluster: 'down', user: 'u' }],
      currentContext: 'down',
    });
    const warnings: unknown[] = [];
    const watcher = new ResourceWatcher<KubeObject>({
      kc,
      resource: BMH,
      log: { ...log, warn: (o: unknown) => warnings.push(o), info: () => undefined } as unknown as typeof log,
      backoff: { initialMs: 20, maxMs: 100 },
      onEvent: () => undefined,
    });
    watcher.start();
    await until('several retries', () => warnings.length >= 3, 5_000);
    const t0 = Date.now();
    await watcher.stop();
    expect(Date.now() - t0).toBeLessThan(1_000);
  });
});
