import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { freeLoopbackPort, startLabChild, type Supervision } from './child';
import { selfSignedCert } from './tls';

/** One fake server of sushy-emulator's fake driver. */
export interface SushySystem {
  name: string;
  /** Stable id in Redfish paths (`/redfish/v1/Systems/<uuid>`); generated when absent. */
  uuid?: string;
  powerState?: 'On' | 'Off';
  nics?: Array<{ mac: string; ip?: string }>;
}

export interface StartSushyOptions {
  systems: SushySystem[];
  /** Config, state, certs and log go here (one directory per process). */
  workDir: string;
  /** Where sushy PUTs a system's JSON on every power/boot change (the lab's listener). */
  notificationUrl?: string;
  /** HTTP Basic credentials; none = no authentication. */
  auth?: { username: string; password: string };
  /** Serve HTTPS with a fresh self-signed certificate for IP 127.0.0.1. */
  tls?: boolean;
  port?: number;
  /** Directory with `sushy-emulator` and `python` (default: the repo's .venv/bin). */
  venvBin?: string;
  /** Restart the emulator when it dies (lab/bmc/child.ts Supervision); lines go to `log`. */
  supervise?: Supervision;
}

export interface SushyEmulator {
  /** http(s)://127.0.0.1:<port> */
  url: string;
  port: number;
  /** system name → Redfish system id (uuid) */
  systemIds: Record<string, string>;
  /** PEM of the self-signed certificate when `tls` is set: the CA bundle that trusts it. */
  caPem?: string;
  logFile: string;
  /** The emulator process now (it changes when a supervised emulator is restarted). */
  readonly pid: number;
  readonly restarts: number;
  stop(): Promise<void>;
}

/** sushy-emulator keeps every system in memory and renders each GET from a template: ~100 per process stays responsive. */
export const SUSHY_SYSTEMS_PER_PROCESS = 100;

/** The repo's .venv/bin (scripts/setup.sh makes it), found from this file in source or dist/. */
export function defaultVenvBin(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, '.venv', 'bin');
    if (existsSync(join(candidate, 'python'))) return candidate;
    dir = dirname(dir);
  }
  return resolve('.venv/bin');
}

/**
 * An htpasswd line as sushy wants it: bcrypt only (sushy_tools/emulator/auth_basic.py
 * refuses other digests). The password reaches Python on stdin, not argv.
 * bcrypt cost 4 because sushy checks the hash on every request: the default
 * cost 12 adds ~250 ms to each call on this machine.
 */
export function htpasswdLine(venvBin: string, username: string, password: string): string {
  const hash = execFileSync(join(venvBin, 'python'), ['-c', 'import bcrypt,sys; print(bcrypt.hashpw(sys.stdin.buffer.read(), bcrypt.gensalt(rounds=4)).decode())'], {
    input: password,
  })
    .toString()
    .trim();
  return `${username}:${hash}\n`;
}

/** A Python literal for sushy's config file (which it runs with flask's `from_pyfile`). */
const py = (v: unknown) => `__import__('json').loads(${JSON.stringify(JSON.stringify(v))})`;

/** Starts one sushy-emulator process with the fake driver (at most {@link SUSHY_SYSTEMS_PER_PROCESS} systems). */
export async function startSushy(o: StartSushyOptions): Promise<SushyEmulator> {
  if (o.systems.length === 0 || o.systems.length > SUSHY_SYSTEMS_PER_PROCESS) {
    throw new Error(`startSushy takes 1..${SUSHY_SYSTEMS_PER_PROCESS} systems, got ${o.systems.length}: use startSushyFleet`);
  }
  const venvBin = o.venvBin ?? defaultVenvBin();
  mkdirSync(o.workDir, { recursive: true });
  const port = o.port ?? (await freeLoopbackPort());
  const systems = o.systems.map((s) => ({
    uuid: s.uuid ?? randomUUID(),
    name: s.name,
    power_state: s.powerState ?? 'Off',
    // Every change is PUT to EXTERNAL_NOTIFICATION_URL: the lab's simulated server follows it.
    external_notifier: Boolean(o.notificationUrl),
    nics: s.nics ?? [],
  }));
  const config: string[] = [
    `SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'`,
    `SUSHY_EMULATOR_LISTEN_PORT = ${port}`,
    'SUSHY_EMULATOR_FAKE_DRIVER = True',
    `SUSHY_EMULATOR_FAKE_SYSTEMS = ${py(systems)}`,
    // The fake driver persists systems in <STATE_DIR>/fakedriver.sqlite, by default a
    // directory shared by every sushy on the machine: give each process its own.
    `SUSHY_EMULATOR_STATE_DIR = ${py(join(o.workDir, 'state'))}`,
  ];
  if (o.notificationUrl) config.push(`EXTERNAL_NOTIFICATION_URL = ${py(o.notificationUrl)}`);
  if (o.auth) {
    const file = join(o.workDir, 'htpasswd');
    writeFileSync(file, htpasswdLine(venvBin, o.auth.username, o.auth.password), { mode: 0o600 });
    config.push(`SUSHY_EMULATOR_AUTH_FILE = ${py(file)}`);
  }
  let caPem: string | undefined;
  if (o.tls) {
    const cert = selfSignedCert(join(o.workDir, 'tls'), '127.0.0.1');
    caPem = cert.certPem;
    config.push(`SUSHY_EMULATOR_SSL_CERT = ${py(cert.certFile)}`, `SUSHY_EMULATOR_SSL_KEY = ${py(cert.keyFile)}`);
  }
  const configFile = join(o.workDir, 'sushy.conf');
  writeFileSync(configFile, config.join('\n') + '\n');
  const url = `${o.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const logFile = join(o.workDir, 'sushy.log');
  const child = await startLabChild({
    command: join(venvBin, 'sushy-emulator'),
    args: ['--config', configFile],
    logFile,
    ready: () => answers(`${url}/redfish/v1`),
    readyTimeoutMs: 20_000,
    supervise: o.supervise,
  });
  return {
    url,
    port,
    systemIds: Object.fromEntries(systems.map((s) => [s.name, s.uuid])),
    caPem,
    logFile,
    get pid() {
      return child.pid;
    },
    get restarts() {
      return child.restarts;
    },
    stop: child.stop,
  };
}

/** Many systems: one sushy process per `perProcess` (default {@link SUSHY_SYSTEMS_PER_PROCESS}), started in turn. */
export async function startSushyFleet(o: StartSushyOptions & { perProcess?: number; /** Supervision per shard, given the names of its systems. */ superviseShard?: (shard: number, systemNames: string[]) => Supervision }): Promise<{ shards: SushyEmulator[]; urlOf(name: string): string; systemIds: Record<string, string>; stop(): Promise<void> }> {
  const shards: SushyEmulator[] = [];
  const owner: Record<string, SushyEmulator> = {};
  try {
    const per = Math.min(o.perProcess ?? SUSHY_SYSTEMS_PER_PROCESS, SUSHY_SYSTEMS_PER_PROCESS);
    for (let i = 0; i < o.systems.length; i += per) {
      const shard = await startSushy({
        ...o,
        port: undefined,
        systems: o.systems.slice(i, i + per),
        workDir: join(o.workDir, `shard-${i / per}`),
        supervise: o.superviseShard
          ? o.superviseShard(i / per, o.systems.slice(i, i + per).map((x) => x.name))
          : o.supervise
            ? { ...o.supervise, name: `${o.supervise.name} shard-${i / per}` }
            : undefined,
      });
      shards.push(shard);
      for (const name of Object.keys(shard.systemIds)) owner[name] = shard;
    }
  } catch (err) {
    await Promise.all(shards.map((s) => s.stop()));
    throw err;
  }
  return {
    shards,
    urlOf: (name) => {
      const s = owner[name];
      if (!s) throw new Error(`no sushy system named ${name}`);
      return s.url;
    },
    systemIds: Object.assign({}, ...shards.map((s) => s.systemIds)) as Record<string, string>,
    stop: async () => {
      await Promise.all(shards.map((s) => s.stop()));
    },
  };
}

/** True when GET url answers 200 (self-signed certificates accepted: this only checks liveness). */
function answers(url: string): Promise<boolean> {
  return new Promise((resolveOk) => {
    const req = (url.startsWith('https') ? httpsRequest : httpRequest)(url, { rejectUnauthorized: false, timeout: 1_000 }, (res) => {
      res.resume();
      resolveOk(res.statusCode === 200);
    });
    req.once('error', () => resolveOk(false));
    req.once('timeout', () => req.destroy());
    req.end();
  });
}

/**
 * `sushy-static` serving a Redfish mockup directory read-only (e.g. DMTF's
 * public-rackmount1): real vendor-shaped resources for inventory and session
 * handling; power and boot writes answer 204 and change nothing.
 */
export async function startSushyStatic(o: { mockupDir: string; workDir: string; port?: number; venvBin?: string }): Promise<{ url: string; port: number; stop(): Promise<void> }> {
  mkdirSync(o.workDir, { recursive: true });
  const port = o.port ?? (await freeLoopbackPort());
  const url = `http://127.0.0.1:${port}`;
  const child = await startLabChild({
    command: join(o.venvBin ?? defaultVenvBin(), 'sushy-static'),
    args: ['-i', '127.0.0.1', '-p', String(port), '-m', o.mockupDir],
    logFile: join(o.workDir, 'sushy-static.log'),
    ready: () => answers(`${url}/redfish/v1`),
    readyTimeoutMs: 20_000,
  });
  return { url, port, stop: child.stop };
}
