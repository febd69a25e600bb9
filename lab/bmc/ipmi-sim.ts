import { createSocket } from 'node:dgram';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freeLoopbackPort, startLabChild, type Supervision } from './child';
import { productFru } from './ipmi-fru';

export interface StartIpmiSimOptions {
  /** Names the server in notifications. */
  name: string;
  /** lan.conf, sim.emu, chassis script, state and log go here. */
  workDir: string;
  username: string;
  password: string;
  /** Loopback UDP port (default: a free one). */
  port?: number;
  /** Power at start. */
  poweredOn?: boolean;
  /**
   * Every chassis change is appended to this file as one JSON line
   * (`{"server","at","power","boot","event"}`); the lab's simulated server
   * follows it. Default: `<workDir>/events.jsonl`.
   */
  eventsFile?: string;
  /** What `fru print 0` reports (the server's make, model and serial); none = no FRU, like a bare ipmi_sim. */
  fru?: { manufacturer: string; product: string; serial: string };
  /** Default `ipmi_sim` from PATH (Debian package openipmi). */
  ipmiSim?: string;
  /** Restart ipmi_sim when it dies (lab/bmc/child.ts Supervision); the chassis state file outlives it. */
  supervise?: Omit<Supervision, 'name'>;
}

export interface IpmiSim {
  /** `ipmi://127.0.0.1:<port>` */
  address: string;
  port: number;
  eventsFile: string;
  /** The chassis state the BMC would report (from the state file the chassis script keeps). */
  state(): { power: 'on' | 'off'; boot: string };
  logFile: string;
  /** The ipmi_sim process now (it changes when a supervised BMC is restarted). */
  readonly pid: number;
  readonly restarts: number;
  stop(): Promise<void>;
}

/**
 * The chassis_control program ipmi_sim runs for power and boot commands
 * (`<mc> get power boot`, `<mc> set power 1 boot pxe`, `set reset 1`,
 * `set shutdown 1`), synchronously: it must be quick. It keeps `power` and
 * `boot` in a state file and appends each change to the events file.
 * Paths are passed as arguments, never interpolated into the script.
 */
const CHASSIS_SCRIPT = `#!/bin/sh
# usage: chassis <state-file> <events-file> <server> <mc> get|set [key value]...
state="$1"; events="$2"; server="$3"; shift 4
power=0; boot=default
[ -f "$state" ] && . "$state"
op="$1"; shift
if [ "$op" = get ]; then
  for k in "$@"; do
    case "$k" in power) echo "power:$power" ;; boot) echo "boot:$boot" ;; esac
  done
  exit 0
fi
event=""
while [ $# -ge 2 ]; do
  case "$1" in
    power) power="$2"; event="power" ;;
    boot) boot="$2"; event="boot" ;;
    reset) power=1; event="reset" ;;
    shutdown) power=0; event="shutdown" ;;
  esac
  shift 2
done
printf 'power=%s\\nboot=%s\\n' "$power" "$boot" > "$state.tmp" && mv "$state.tmp" "$state"
printf '{"server":"%s","at":"%s","power":%s,"boot":"%s","event":"%s"}\\n' "$server" "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" "$power" "$boot" "$event" >> "$events"
`;

/** A name/password safe inside lan.conf's double quotes (ipmi_sim has no escaping). */
function confString(what: string, v: string): string {
  if (!/^[\x21-\x7e]{1,16}$/.test(v) || v.includes('"')) throw new Error(`ipmi_sim ${what} must be 1-16 printable ASCII characters without spaces or quotes`);
  return `"${v}"`;
}

/**
 * ipmi_sim's lan.conf for one BMC on a loopback UDP port: user 2 is the admin
 * (measured: without it ipmitool stalls), and every chassis action runs `chassisCommand` (ipmi_sim appends
 * the operation and its arguments). Holds the password: write it 0600.
 */
export function renderLanConf(o: { name: string; port: number; username: string; password: string; chassisCommand: string }): string {
  return [
    `name ${confString('name', o.name.slice(0, 16))}`,
    'set_working_mc 0x20',
    '  startlan 1',
    `    addr 127.0.0.1 ${o.port}`,
    '    priv_limit admin',
    '    allowed_auths_callback none md2 md5 straight',
    '    allowed_auths_user none md2 md5 straight',
    '    allowed_auths_operator none md2 md5 straight',
    '    allowed_auths_admin none md2 md5 straight',
    '    guid a123456789abcdefa123456789abcdef',
    '  endlan',
    `  chassis_control "${o.chassisCommand} 0x20"`,
    `  user 2 true ${confString('username', o.username)} ${confString('password', o.password)} admin 10 none md2 md5 straight`,
    '',
  ].join('\n');
}

/**
 * Starts one `ipmi_sim` (IPMI 2.0 over RMCP+ on a loopback UDP port) for one
 * lab server, configured as measured to work: user 2 is the admin with the
 * given credentials, MC 0x20 with the chassis device.
 */
export async function startIpmiSim(o: StartIpmiSimOptions): Promise<IpmiSim> {
  mkdirSync(o.workDir, { recursive: true });
  const port = o.port ?? (await freeLoopbackPort('udp'));
  const stateFile = join(o.workDir, 'chassis.state');
  const eventsFile = o.eventsFile ?? join(o.workDir, 'events.jsonl');
  const script = join(o.workDir, 'chassis');
  writeFileSync(script, CHASSIS_SCRIPT);
  chmodSync(script, 0o755);
  writeFileSync(stateFile, `power=${o.poweredOn ? 1 : 0}\nboot=default\n`);
  if (/["\s]/.test(o.workDir + eventsFile + o.name)) throw new Error(`ipmi_sim paths and server names must not contain spaces or quotes: ${o.workDir}`);
  const lanConf = join(o.workDir, 'lan.conf');
  writeFileSync(lanConf, renderLanConf({ name: o.name, port, username: o.username, password: o.password, chassisCommand: `${script} ${stateFile} ${eventsFile} ${o.name}` }), { mode: 0o600 });
  const emu = join(o.workDir, 'sim.emu');
  const fru = o.fru ? productFru(o.fru) : undefined;
  writeFileSync(
    emu,
    [
      'mc_setbmc 0x20',
      'mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr',
      // FRU device 0 of MC 0x20, given as bytes; must come before mc_enable.
      ...(fru ? [`mc_add_fru_data 0x20 0 ${fru.length} data ${fru.map((b) => `0x${b.toString(16).padStart(2, '0')}`).join(' ')}`] : []),
      'mc_enable 0x20',
      '',
    ].join('\n'),
  );
  const logFile = join(o.workDir, 'ipmi_sim.log');
  const child = await startLabChild({
    command: o.ipmiSim ?? 'ipmi_sim',
    // -n: no console on stdio; -p: no persisted SDR/SEL between runs.
    args: ['-c', lanConf, '-f', emu, '-s', join(o.workDir, 'state'), '-n', '-p'],
    logFile,
    ready: () => rmcpPing(port),
    readyTimeoutMs: 10_000,
    supervise: o.supervise ? { ...o.supervise, name: `ipmi_sim of ${o.name} (udp ${port})` } : undefined,
  });
  return {
    address: `ipmi://127.0.0.1:${port}`,
    port,
    eventsFile,
    logFile,
    state() {
      const text = readFileSync(stateFile, 'utf8');
      return { power: /power=1/.test(text) ? 'on' : 'off', boot: /boot=(\S+)/.exec(text)?.[1] ?? 'default' };
    },
    get pid() {
      return child.pid;
    },
    get restarts() {
      return child.restarts;
    },
    stop: child.stop,
  };
}

/**
 * True when an ASF/RMCP presence ping (DSP0136) to 127.0.0.1:port gets a
 * pong within 300 ms: ipmi_sim is listening. Cheaper than an ipmitool run,
 * which waits seconds on a port nobody serves.
 */
export function rmcpPing(port: number): Promise<boolean> {
  // RMCP v6, seq 0xff (no ack), class ASF | IANA 4542 | type 0x80 ping | tag | reserved | length 0
  const ping = Buffer.from([0x06, 0x00, 0xff, 0x06, 0x00, 0x00, 0x11, 0xbe, 0x80, 0x01, 0x00, 0x00]);
  return new Promise((resolve) => {
    const sock = createSocket('udp4');
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 300);
    sock.once('message', (msg) => done(msg.length >= 9 && msg[8] === 0x40));
    sock.once('error', () => done(false));
    sock.send(ping, port, '127.0.0.1');
  });
}
