/**
 * A JSON state file that is always either the old or the new state, never
 * half of one: each write goes to a temporary file (mode 0600), is fsynced
 * and renamed over the old file, and the directory is fsynced so the rename
 * itself survives a crash.
 *
 * Writes are coalesced: persist() resolves once a write that started after
 * the call has reached the disk. While one write runs, any number of
 * persist() calls share the next one. Changes that may be lost on a crash
 * (progress, discovery sightings) use persistSoon(), which writes at most
 * once per `lazyMs` (default 1 s), so a flood of them costs about one write
 * a second, not one each.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

interface Waiter {
  upTo: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

let tmpSeq = 0;

export class JsonStateFile {
  private requested = 0;
  private loop: Promise<void> | undefined;
  private waiters: Waiter[] = [];
  private lazy: NodeJS.Timeout | undefined;

  /** `serialize` is called at the start of each write: the file gets the state as of that moment. */
  constructor(
    readonly file: string,
    private readonly serialize: () => string,
    private readonly onBackgroundError: (err: Error) => void = () => undefined,
    private readonly lazyMs = 1000,
  ) {}

  /** The parsed file, or undefined when it does not exist. */
  static async read(file: string): Promise<unknown> {
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new Error(`state file ${file} is not valid JSON (${(err as Error).message}): fix or remove it`);
    }
  }

  /** Resolves when the state as of now is on disk. */
  persist(): Promise<void> {
    const mine = ++this.requested;
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ upTo: mine, resolve, reject }));
    this.loop ??= this.run();
    return done;
  }

  /** persist() within `lazyMs`, for changes that may be lost on a crash (progress, discovery): errors go to the log. */
  persistSoon(): void {
    if (this.lazy) return;
    this.lazy = setTimeout(() => {
      this.lazy = undefined;
      this.persist().catch((err: Error) => this.onBackgroundError(err));
    }, this.lazyMs);
    this.lazy.unref();
  }

  /** Resolves when every change so far is on disk (or its write failed). */
  async flush(): Promise<void> {
    const pendingLazy = Boolean(this.lazy);
    if (this.lazy) clearTimeout(this.lazy);
    this.lazy = undefined;
    if (this.requested === 0 && !this.loop && !pendingLazy) return;
    await this.persist().catch(() => undefined);
  }

  private async run(): Promise<void> {
    let written = 0;
    while (written < this.requested) {
      const target = this.requested;
      const text = this.serialize();
      let failure: Error | undefined;
      try {
        await this.writeAtomically(text);
      } catch (err) {
        failure = err as Error;
      }
      written = target;
      const settled = this.waiters.filter((w) => w.upTo <= target);
      this.waiters = this.waiters.filter((w) => w.upTo > target);
      for (const w of settled) {
        if (failure) w.reject(new Error(`could not write ${this.file}: ${failure.message}`));
        else w.resolve();
      }
    }
    this.loop = undefined;
  }

  private async writeAtomically(text: string): Promise<void> {
    const dir = path.dirname(this.file);
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    // Unique per write: two instances on one file (a test reopening it) never share a temporary file.
    const tmp = `${this.file}.${process.pid}.${++tmpSeq}.tmp`;
    const fh = await fs.open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, this.file);
    const dh = await fs.open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  }
}
