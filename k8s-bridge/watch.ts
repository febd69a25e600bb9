/**
 * List + watch of one custom resource that survives everything a long-lived
 * watch meets: it resumes from the last resourceVersion it saw (bookmarks keep
 * that fresh on quiet resources), relists on 410 Gone (reporting objects that
 * vanished during the gap as deletions), and reconnects with capped
 * exponential backoff after any other failure.
 *
 * Written on @kubernetes/client-node's low-level Watch rather than its
 * ListWatch/informer because ListWatch (1.4.0, dist/cache.js) stops for good
 * after any error other than 410 (it only calls the error callbacks), never
 * asks for bookmarks, and gives no "initial list delivered" signal.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CustomObjectsApi, type KubeConfig, Watch } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { makeKeepAliveApiClient } from './kube-client';

export interface ResourceRef {
  group: string;
  version: string;
  plural: string;
}

export interface KubeObject {
  metadata: { name?: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  [k: string]: unknown;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface WatcherOptions<T extends KubeObject> {
  kc: KubeConfig;
  resource: ResourceRef;
  /** Only this namespace; all namespaces when absent. */
  namespace?: string;
  /** Called in order for every change; must not throw or block (enqueue and return). */
  onEvent(type: WatchEventType, object: T): void;
  /** Called after each (re)list has been delivered through onEvent. */
  onSynced?(): void;
  log: Logger;
  backoff?: { initialMs: number; maxMs: number };
  /**
   * Resume from this resourceVersion instead of listing first (e.g. one kept
   * from a previous run). If the server no longer has it (410), the watcher lists.
   */
  resumeFrom?: string;
  /** Server-side end of each watch connection; 5-10 min (spread) by default. */
  watchTimeoutSeconds?: number;
}

const keyOf = (o: KubeObject) => `${o.metadata.namespace ?? ''}/${o.metadata.name ?? ''}`;

export class ResourceWatcher<T extends KubeObject> {
  private stopped = false;
  private resourceVersion = '';
  /** Last state seen per object: to report deletions that happened while no watch was open. */
  private readonly known = new Map<string, T>();
  private controller: AbortController | undefined;
  private readonly stopSignal = new AbortController();
  private loop: Promise<void> | undefined;
  private readonly api: CustomObjectsApi;
  private readonly path: string;

  constructor(private readonly opts: WatcherOptions<T>) {
    this.api = makeKeepAliveApiClient(opts.kc, CustomObjectsApi);
    const { group, version, plural } = opts.resource;
    this.path = `/apis/${group}/${version}${opts.namespace ? `/namespaces/${opts.namespace}` : ''}/${plural}`;
    this.resourceVersion = opts.resumeFrom ?? '';
  }

  /** The resourceVersion the next watch resumes from ('' = list first). */
  get lastResourceVersion(): string {
    return this.resourceVersion;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopSignal.abort();
    this.controller?.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { initialMs, maxMs } = this.opts.backoff ?? { initialMs: 250, maxMs: 30_000 };
    let failures = 0;
    while (!this.stopped) {
      try {
        if (this.resourceVersion === '') await this.relist();
        const outcome = await this.watchOnce();
        if (outcome === 'gone') {
          this.opts.log.info({ path: this.path }, 'watch resourceVersion expired (410 Gone); relisting');
          this.resourceVersion = '';
        }
        failures = 0;
      } catch (err) {
        if (this.stopped) break;
        if ((err as { code?: number; statusCode?: number }).code === 410 || (err as { statusCode?: number }).statusCode === 410) {
          this.resourceVersion = '';
          continue;
        }
        failures += 1;
        const delay = Math.min(maxMs, initialMs * 2 ** Math.min(failures - 1, 20)) * (0.5 + Math.random() / 2);
        this.opts.log.warn({ path: this.path, err: (err as Error).message.split('\n')[0], failures, retryInMs: Math.round(delay) }, 'watch failed; reconnecting');
        await sleep(delay, undefined, { signal: this.stopSignal.signal }).catch(() => undefined);
      }
    }
  }

  private async relist(): Promise<void> {
    const { group, version, plural } = this.opts.resource;
    const list = (this.opts.namespace
      ? await this.api.listNamespacedCustomObject({ group, version, plural, namespace: this.opts.namespace })
      : await this.api.listClusterCustomObject({ group, version, plural })) as { items: T[]; metadata?: { resourceVersion?: string } };
    if (this.stopped) return;
    const seen = new Set<string>();
    for (const item of list.items) {
      const key = keyOf(item);
      seen.add(key);
      const before = this.known.get(key);
      this.known.set(key, item);
      if (!before) this.opts.onEvent('ADDED', item);
      else if (before.metadata.resourceVersion !== item.metadata.resourceVersion) this.opts.onEvent('MODIFIED', item);
    }
    for (const [key, gone] of this.known) {
      if (seen.has(key)) continue;
      this.known.delete(key);
      this.opts.onEvent('DELETED', gone);
    }
    this.resourceVersion = list.metadata?.resourceVersion ?? '';
    this.opts.onSynced?.();
  }

  /** One watch connection; resolves when it ends normally or with 410, rejects on failure. */
  private watchOnce(): Promise<'closed' | 'gone'> {
    return new Promise((resolve, reject) => {
      let gone = false;
      // The server ends each watch after timeoutSeconds (spread out like client-go's 5-10 min) and we resume.
      const timeoutSeconds = this.opts.watchTimeoutSeconds ?? 300 + Math.floor(Math.random() * 300);
      // A connection that died without a FIN (peer gone, network cut) never ends by itself:
      // give up on it when the server has been silent well past its own timeout.
      let lastActivity = Date.now();
      const watchdog = setInterval(() => {
        if (Date.now() - lastActivity > (timeoutSeconds + 30) * 1000) {
          this.opts.log.warn({ path: this.path, silentForS: Math.round((Date.now() - lastActivity) / 1000) }, 'watch connection silent; reconnecting');
          this.controller?.abort();
          onDone(new Error('watch connection silent past its timeout'));
        }
      }, 5_000);
      watchdog.unref();
      const onLine = (type: string, object: T & { code?: number }) => {
        lastActivity = Date.now();
        if (this.stopped) return;
        switch (type) {
          case 'ADDED':
          case 'MODIFIED':
            this.known.set(keyOf(object), object);
            this.opts.onEvent(type, object);
            break;
          case 'DELETED':
            this.known.delete(keyOf(object));
            this.opts.onEvent(type, object);
            break;
          case 'BOOKMARK':
            break;
          case 'ERROR':
            if (object.code === 410) gone = true;
            else this.opts.log.warn({ path: this.path, status: object }, 'watch returned an error event');
            return;
          default:
            return;
        }
        this.resourceVersion = object.metadata?.resourceVersion ?? this.resourceVersion;
      };
      let done = false;
      const onDone = (err: unknown) => {
        if (done) return;
        done = true;
        clearInterval(watchdog);
        this.controller = undefined;
        if (gone) resolve('gone');
        else if (err && !this.stopped) reject(err instanceof Error ? err : new Error(String(err)));
        else resolve('closed');
      };
      new Watch(this.opts.kc)
        .watch(this.path, { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds }, onLine, onDone)
        .then((controller) => {
          if (done) return; // already ended (e.g. connection refused): nothing to keep
          this.controller = controller;
          if (this.stopped) controller.abort();
        })
        .catch(reject);
    });
  }
}
