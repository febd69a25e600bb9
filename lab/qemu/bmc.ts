/**
 * An IPMI BMC in front of one QEMU machine: Debian openipmi's `ipmi_sim` on a
 * loopback UDP port (IPMI 2.0 / RMCP+, what ipmitool and Ironflow's IPMI
 * driver speak), whose chassis_control program turns chassis commands into
 * QMP on the VM's BMC monitor socket:
 *
 *   power on   -> system_reset + cont (from prelaunch, paused or shutdown)
 *   power off  -> stop (the VM is frozen: no CPU, no network traffic)
 *   reset      -> system_reset (+ cont when it was off: BMCs power on on reset)
 *   bootdev pxe  -> qom-set bootindex: NIC first, disk second
 *   bootdev disk -> qom-set bootindex: disk only. With -boot strict=on a
 *                   device without a bootindex is never tried, so an
 *                   unbootable disk stops there instead of falling through to
 *                   PXE: "next boot disk" means exactly that.
 *   get power  -> query-status: running = on
 *   get boot   -> qom-get the NIC's bootindex: first = pxe
 *
 * The lab's other BMC (lab/bmc/ipmi-sim.ts) keeps power in a state file for
 * simulated servers and has no hook for another chassis program, so this one
 * writes its own lan.conf; it shares the child supervision and readiness
 * ping. ipmi_sim runs the program synchronously per command, so it must be
 * quick: Python's stdlib, one QMP connection, ~50 ms.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freeLoopbackPort, startLabChild } from '../bmc/child';
import { renderLanConf, rmcpPing } from '../bmc/ipmi-sim';
import { VM_DEVICES } from './vm';

export interface StartQemuBmcOptions {
  name: string;
  workDir: string;
  /** The VM's BMC monitor (LabVm.bmcQmpSocket). */
  qmpSocket: string;
  username: string;
  password: string;
  port?: number;
  /** Where supervision lines go (a killed BMC is restarted, lab/bmc/child.ts). */
  log?: (line: string) => void;
}

export interface QemuBmc {
  /** `ipmi://127.0.0.1:<port>`, a BareMetalHost's spec.bmc.address. */
  address: string;
  port: number;
  logFile: string;
  /** Every chassis call, one JSON line each (op, args, result, ms). */
  eventsFile: string;
  stop(): Promise<void>;
}

/**
 * usage: chassis <qmp-socket> <events-file> <nic-id> <disk-id> <mc> get|set [key value]...
 * Paths arrive as arguments: nothing is interpolated into the program.
 */
const CHASSIS_PROGRAM = `#!/usr/bin/python3
import json, socket, sys, time
sock_path, events, nic, disk, _mc, op, *rest = sys.argv[1:]
t0 = time.time()
s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sock_path)
f = s.makefile('rw')
def read():
    while True:
        m = json.loads(f.readline())
        if 'event' not in m: return m
def q(cmd, **args):
    f.write(json.dumps({'execute': cmd, 'arguments': args} if args else {'execute': cmd}) + '\\n'); f.flush()
    m = read()
    if 'error' in m: raise SystemExit('QMP %s: %s' % (cmd, m['error'].get('desc')))
    return m['return']
read(); q('qmp_capabilities')
def running(): return q('query-status')['status'] == 'running'
def bootindex(dev, n): q('qom-set', path='/machine/peripheral/' + dev, property='bootindex', value=n)
out = []
if op == 'get':
    for k in rest:
        if k == 'power': out.append('power:%d' % running())
        elif k == 'boot':
            first = q('qom-get', path='/machine/peripheral/' + nic, property='bootindex') == 1
            out.append('boot:%s' % ('pxe' if first else 'default'))
else:
    for k, v in zip(rest[0::2], rest[1::2]):
        if k == 'power':
            if v == '1' and not running(): q('system_reset'); q('cont')
            elif v == '0' and running(): q('stop')
        elif k == 'reset':
            was = running(); q('system_reset')
            if not was: q('cont')
        elif k == 'shutdown':
            if running(): q('stop')
        elif k == 'boot':
            # bootindex values must stay unique (-1, "not a boot device", may repeat).
            if v == 'pxe': bootindex(disk, 10); bootindex(nic, 1); bootindex(disk, 2)
            else: bootindex(nic, -1); bootindex(disk, 1)
for line in out: print(line)
with open(events, 'a') as e:
    e.write(json.dumps({'at': t0, 'op': op, 'args': rest, 'out': out, 'ms': round((time.time() - t0) * 1000)}) + '\\n')
`;

export async function startQemuBmc(o: StartQemuBmcOptions): Promise<QemuBmc> {
  mkdirSync(o.workDir, { recursive: true });
  if (/["\s]/.test(o.workDir + o.qmpSocket + o.name)) throw new Error(`BMC paths and names must not contain spaces or quotes: ${o.workDir}`);
  const port = o.port ?? (await freeLoopbackPort('udp'));
  const program = join(o.workDir, 'chassis-qmp');
  writeFileSync(program, CHASSIS_PROGRAM);
  chmodSync(program, 0o755);
  const eventsFile = join(o.workDir, 'chassis.jsonl');
  const lanConf = join(o.workDir, 'lan.conf');
  // The password is in this file: owner only.
  writeFileSync(
    lanConf,
    renderLanConf({ name: o.name, port, username: o.username, password: o.password, chassisCommand: `${program} ${o.qmpSocket} ${eventsFile} ${VM_DEVICES.nic} ${VM_DEVICES.disk}` }),
    { mode: 0o600 },
  );
  const emu = join(o.workDir, 'sim.emu');
  writeFileSync(emu, ['mc_setbmc 0x20', 'mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr', 'mc_enable 0x20', ''].join('\n'));
  const logFile = join(o.workDir, 'ipmi_sim.log');
  const child = await startLabChild({
    command: 'ipmi_sim',
    args: ['-c', lanConf, '-f', emu, '-s', join(o.workDir, 'state'), '-n', '-p'],
    logFile,
    ready: () => rmcpPing(port),
    readyTimeoutMs: 10_000,
    // Power state lives in QEMU, not in ipmi_sim: a restarted BMC reads it again over QMP.
    supervise: { name: `ipmi_sim of ${o.name} (udp ${port})`, log: o.log },
  });
  return { address: `ipmi://127.0.0.1:${port}`, port, logFile, eventsFile, stop: child.stop };
}
