import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import pino from 'pino';
import type { LabFaultSpec } from '../../api/lab';
import { startFaultProxy, type FaultProxy } from '../../lab/bmc/fault-proxy';
import { startSushy, type SushyEmulator, type SushySystem } from '../../lab/bmc/sushy';

/**
 * DMTF's public-rackmount1 Redfish mockup from the shared test data beside
 * the checkout, found by walking up from here (so a git worktree finds it
 * as well as the main checkout).
 */
export function redfishMockupDir(name = 'dmtf-public-rackmount1'): string {
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    const candidate = join(dir, 'shared', 'testdata', 'redfish-mockups', name);
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(`Redfish mockup ${name} not found in a shared/testdata/redfish-mockups directory above ${__dirname}`);
}

/** A logger that writes nothing (activities need one; tests assert on results, not logs). */
export const silentLog = pino({ level: 'silent' });

/** A fresh directory under the OS temp dir; remove it with `rmSync` or leave it for post-mortems. */
export function labWorkDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `ironflow-${label}-`));
}

export interface RedfishLab {
  sushy: SushyEmulator;
  proxy: FaultProxy;
  /** `redfish+http://<proxy>/redfish/v1/Systems/<id>`: the address a BareMetalHost would carry. */
  addressOf(name: string): string;
  /** The same system straight at sushy, without the proxy. */
  directAddressOf(name: string): string;
  systemId(name: string): string;
  setFaults(name: string, faults: LabFaultSpec[]): void;
  stop(): Promise<void>;
}

/**
 * sushy-emulator (fake driver) with HTTP Basic auth behind the fault proxy,
 * which also plays a Redfish SessionService so session hygiene is checkable.
 */
export async function startRedfishLab(o: { label: string; systems: SushySystem[]; username: string; password: string; sessions?: boolean }): Promise<RedfishLab> {
  const workDir = labWorkDir(o.label);
  const sushy = await startSushy({ systems: o.systems, workDir, auth: { username: o.username, password: o.password } });
  let proxy: FaultProxy;
  try {
    proxy = await startFaultProxy({ upstream: sushy.url, sessions: o.sessions ?? true });
  } catch (err) {
    await sushy.stop();
    throw err;
  }
  const systemId = (name: string) => {
    const id = sushy.systemIds[name];
    if (!id) throw new Error(`no lab system ${name}`);
    return id;
  };
  return {
    sushy,
    proxy,
    systemId,
    addressOf: (name) => `redfish+http://127.0.0.1:${proxy.port}/redfish/v1/Systems/${systemId(name)}`,
    directAddressOf: (name) => `redfish+http://127.0.0.1:${sushy.port}/redfish/v1/Systems/${systemId(name)}`,
    setFaults: (name, faults) => proxy.setFaults(systemId(name), faults),
    stop: async () => {
      await proxy.stop();
      await sushy.stop();
      rmSync(workDir, { recursive: true, force: true });
    },
  };
}

/**
 * A workflow that runs one named activity with the given retry policy: the
 * smallest real Temporal path for an activity's retry behaviour. Written to
 * a temp directory (next to a node_modules link for the bundler) because a
 * workflow file must be its own bundle entry.
 */
export function retryingActivityWorkflowsPath(): string {
  const dir = join(tmpdir(), 'ironflow-bmc-test-workflows');
  mkdirSync(dir, { recursive: true });
  const nm = join(dir, 'node_modules');
  if (!existsSync(nm)) symlinkSync(resolve(__dirname, '../../node_modules'), nm, 'dir');
  const file = join(dir, 'run-activity.js');
  writeFileSync(
    file,
    `const { proxyActivities } = require('@temporalio/workflow');
exports.runActivity = async function runActivity(name, input, retry) {
  const acts = proxyActivities({ startToCloseTimeout: '60s', heartbeatTimeout: '20s', retry });
  return acts[name](input);
};
`,
  );
  return file;
}

/** Collects call durations and prints a one-line summary (the brief asks for measured latencies). */
export class Latencies {
  private readonly samples: Record<string, number[]> = {};

  async time<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const t = process.hrtime.bigint();
    try {
      return await fn();
    } finally {
      (this.samples[what] ??= []).push(Number(process.hrtime.bigint() - t) / 1e6);
    }
  }

  summary(): string {
    return Object.entries(this.samples)
      .map(([k, v]) => {
        const s = [...v].sort((a, b) => a - b);
        const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!.toFixed(1);
        return `${k}: n=${s.length} p50=${q(0.5)}ms p95=${q(0.95)}ms max=${s[s.length - 1]!.toFixed(1)}ms`;
      })
      .join('\n');
  }
}
