import { writeFileSync } from 'node:fs';
import type { Logger } from 'pino';

/** One part of the plane (embedded child or external service) as the plane last saw it. */
export interface PartHealth {
  state: 'ok' | 'down';
  detail: string;
  /** ISO time of the last change of state. */
  since: string;
  /** Times the plane restarted this part (embedded children only). */
  restarts: number;
}

/**
 * The plane's honest view of its parts. A part going down is an error line
 * in the log (never a warning that scrolls by), coming back is a line too,
 * and the whole table is kept in a file (`<state>/run/health.json`) an
 * operator or a test can read while the plane runs.
 */
export class PlaneHealth {
  private readonly parts = new Map<string, PartHealth>();

  constructor(
    private readonly log: Logger,
    private readonly file?: string,
  ) {}

  ok(part: string, detail: string): void {
    this.set(part, 'ok', detail);
  }

  down(part: string, detail: string): void {
    this.set(part, 'down', detail);
  }

  restarted(part: string): void {
    const p = this.parts.get(part);
    if (p) p.restarts += 1;
    this.write();
  }

  /**
   * Asks `probe` every `everyMs` and records the answer: for parts the plane
   * does not run itself (an external Temporal or cluster, the worker), which
   * it cannot restart but must not pretend are fine. Returns the stopper.
   */
  watch(part: string, probe: () => Promise<string>, everyMs = 10_000): () => void {
    let busy = false;
    const tick = async () => {
      if (busy) return;
      busy = true;
      try {
        this.ok(part, await probe());
      } catch (err) {
        this.down(part, (err as Error).message);
      } finally {
        busy = false;
      }
    };
    void tick();
    const t = setInterval(() => void tick(), everyMs);
    t.unref();
    return () => clearInterval(t);
  }

  get(part: string): PartHealth | undefined {
    return this.parts.get(part);
  }

  snapshot(): Record<string, PartHealth> {
    return Object.fromEntries([...this.parts].map(([k, v]) => [k, { ...v }]));
  }

  /** "temporal ok, etcd DOWN (exited ...)" for the banner. */
  line(): string {
    return [...this.parts].map(([k, v]) => (v.state === 'ok' ? `${k} ok` : `${k} DOWN (${v.detail})`)).join(', ');
  }

  private set(part: string, state: PartHealth['state'], detail: string): void {
    const prev = this.parts.get(part);
    if (prev?.state === state && prev.detail === detail) return;
    const changed = prev?.state !== state;
    this.parts.set(part, { state, detail, since: changed || !prev ? new Date().toISOString() : prev.since, restarts: prev?.restarts ?? 0 });
    if (state === 'down') this.log.error({ part, health: 'down', detail }, `${part} is DOWN: ${detail}`);
    else if (prev?.state === 'down') this.log.warn({ part, health: 'ok', detail }, `${part} is back: ${detail}`);
    else if (changed) this.log.info({ part, health: 'ok', detail }, `${part} ok: ${detail}`);
    this.write();
  }

  private write(): void {
    if (!this.file) return;
    try {
      writeFileSync(this.file, JSON.stringify(this.snapshot(), null, 2) + '\n', { mode: 0o600 });
    } catch (err) {
      this.log.warn({ err, file: this.file }, 'cannot write the health file');
    }
  }
}
