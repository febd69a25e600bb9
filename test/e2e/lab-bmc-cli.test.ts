/**
 * The lab's BMCs driven by the operator's own tools, not Ironflow's drivers:
 * `ipmitool -I lanplus -C 3` and `curl` against Redfish power a lab server
 * on with next boot PXE, and the simulated server fetches its boot files over
 * real TFTP and HTTP from Ironflow's PXE services (seen in their logs). A BMC
 * process killed with SIGKILL is restarted by the lab on the same port with
 * the same power state.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import pino from 'pino';
import type { LabInventory } from '../../api/lab';
import { projectRoot } from '../../api/project-root';
import { startLab, type Lab } from '../../lab/lab';
import type { BootEvent } from '../../lab/sim/server';
import { startProvisioning, type ProvisioningServices } from '../../workers/provisioning';
import { temporalTestContext, type TemporalTestContext } from '../helpers/env';
import { registerTestSecret } from '../helpers/secrets';
import { copyFileSync } from 'node:fs';
import { AGENT_BOOT_FILES } from '../../api/pxe';

const run = promisify(execFile);

describe('lab BMCs driven by ipmitool and curl', () => {
  let temporal: TemporalTestContext;
  let pxe: ProvisioningServices;
  let lab: Lab;
  let work: string;
  const labLog: string[] = [];
  const logLines: Array<Record<string, unknown>> = [];
  const events: Array<{ server: string; e: BootEvent }> = [];
  const inventory: LabInventory = {
    namespace: 'cli',
    servers: [
      { name: 'cli-rf', vendor: 'HPE', model: 'DL360', cpus: 2, memoryMiB: 2048, disks: [{ name: 'sda', sizeGiB: 0.0625, serialNumber: 'CLI-RF' }], nics: [{ name: 'eth0', mac: '52:54:00:c1:00:01' }], bmc: { protocol: 'redfish', username: 'admin', password: `rf-${randomBytes(6).toString('hex')}` } },
      { name: 'cli-ipmi', vendor: 'Supermicro', model: 'X11', cpus: 2, memoryMiB: 2048, disks: [{ name: 'sda', sizeGiB: 0.0625, serialNumber: 'CLI-IPMI' }], nics: [{ name: 'eth0', mac: '52:54:00:c1:00:02' }], bmc: { protocol: 'ipmi', username: 'admin', password: `ip-${randomBytes(6).toString('hex')}` } },
    ],
  };

  beforeAll(async () => {
    registerTestSecret(...inventory.servers.map((s) => s.bmc.password));
    temporal = await temporalTestContext('cli');
    work = mkdtempSync(join(tmpdir(), 'ironflow-cli-'));
    const log = pino({ level: 'info' }, { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) });
    const files = join(work, 'files');
    pxe = await startProvisioning({ stateDir: join(work, 'pxe'), filesDir: files, bindHost: '127.0.0.1', httpPort: 0, tftpPort: 0, client: temporal.client, log });
    for (const f of Object.values(AGENT_BOOT_FILES)) copyFileSync(join(projectRoot(__dirname), '.ironflow', 'boot', f), join(files, f));
    lab = await startLab({ inventory, workDir: join(work, 'lab'), pxe: { httpUrl: pxe.httpUrl, tftp: pxe.tftp }, onEvent: (server, e) => events.push({ server, e }), log: (l) => labLog.push(l) });
    // What startAgentSession does for a host about to be inspected.
    for (const s of inventory.servers) {
      await pxe.sessions.startSession({ namespace: 'cli', name: s.name }, s.nics[0]!.mac, { command: { id: `inspect-${s.name}`, type: 'inspect' }, expected: {} });
    }
  });
  afterAll(async () => {
    await lab?.stop();
    await pxe?.stop();
    await temporal?.close();
  });

  const netbooted = async (server: string) => {
    for (let i = 0; i < 150; i++) {
      const hit = events.find((x) => x.server === server && x.e.kind === 'netboot');
      if (hit) return hit.e;
      await sleep(100);
    }
    throw new Error(`${server} did not netboot; events: ${JSON.stringify(events)}`);
  };
  const tftpKernelSends = () => logLines.filter((l) => l.component === 'pxe-tftp' && l.file === AGENT_BOOT_FILES.kernel && l.outcome === 'sent').length;
  /** TFTP lines name the client address, not the host: count the kernel transfers since `before`. */
  const fetchedOverTftpAndHttp = (server: string, tftpBefore: number) => {
    const mac = inventory.servers.find((s) => s.name === server)!.nics[0]!.mac;
    const host = `cli/${server}`;
    return {
      script: logLines.some((l) => l.component === 'pxe-http' && l.url === `/boot/${mac.replace(/:/g, '-')}.ipxe` && l.status === 200),
      kernelOverTftp: tftpKernelSends() === tftpBefore + 1,
      initrdOverHttp: logLines.some((l) => l.component === 'pxe-http' && l.url === `/files/${AGENT_BOOT_FILES.initramfs}` && l.host === host),
    };
  };

  it('ipmitool -I lanplus -C 3: bootdev pxe + power on -> the server PXE-boots; power off -> it is off', async () => {
    const s = inventory.servers[1]!;
    const port = new URL(lab.member(s.name).bmcAddress.replace('ipmi://', 'http://')).port;
    const ipmitool = (...a: string[]) => run('ipmitool', ['-I', 'lanplus', '-C', '3', '-H', '127.0.0.1', '-p', port, '-U', s.bmc.username, '-E', ...a], { env: { ...process.env, IPMI_PASSWORD: s.bmc.password } });
    const before = tftpKernelSends();
    await ipmitool('chassis', 'bootdev', 'pxe');
    expect((await ipmitool('chassis', 'power', 'on')).stdout).toContain('Up/On');
    const boot = await netbooted(s.name);
    expect(boot).toMatchObject({ kind: 'netboot', script: 'agent' });
    expect((boot as { kernelBytes?: number }).kernelBytes).toBeGreaterThan(1_000_000);
    expect(fetchedOverTftpAndHttp(s.name, before)).toEqual({ script: true, kernelOverTftp: true, initrdOverHttp: true });
    expect((await ipmitool('chassis', 'power', 'status')).stdout).toContain('on');
    await ipmitool('chassis', 'power', 'off');
    for (let i = 0; i < 50 && lab.member(s.name).sim!.poweredOn; i++) await sleep(100);
    expect(lab.member(s.name).sim!.poweredOn).toBe(false);
  }, 60_000);

  it('curl against Redfish: boot override Pxe + Reset On -> the server PXE-boots', async () => {
    const s = inventory.servers[0]!;
    const system = lab.member(s.name).bmcAddress.replace('redfish+http://', 'http://');
    const curl = (...a: string[]) => run('curl', ['-sS', '-f', '-u', `${s.bmc.username}:${s.bmc.password}`, '-H', 'content-type: application/json', ...a]);
    const before = tftpKernelSends();
    await curl('-X', 'PATCH', '-d', JSON.stringify({ Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' } }), system);
    await curl('-X', 'POST', '-d', JSON.stringify({ ResetType: 'On' }), `${system}/Actions/ComputerSystem.Reset`);
    // sushy's fake driver applies a power action 1-11 s later, on a read: poll as a Redfish client would.
    let power = '';
    for (let i = 0; i < 30 && power !== 'On'; i++) {
      power = (JSON.parse((await curl(system)).stdout) as { PowerState: string }).PowerState;
      if (power !== 'On') await sleep(500);
    }
    expect(power).toBe('On');
    expect(await netbooted(s.name)).toMatchObject({ kind: 'netboot', script: 'agent' });
    expect(fetchedOverTftpAndHttp(s.name, before)).toEqual({ script: true, kernelOverTftp: true, initrdOverHttp: true });
    // Wrong credentials are refused by this server's own BMC.
    await expect(run('curl', ['-sS', '-f', '-u', 'admin:wrong-password', system])).rejects.toThrow(/401/);
  }, 60_000);

  const isAlive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  /** The pid of the one process of this test's lab whose command line matches (this test's own work folder). */
  const pidOf = async (pattern: string): Promise<number> => {
    const { stdout } = await run('pgrep', ['-f', pattern]);
    const pids = stdout.trim().split('\n').filter(Boolean).map(Number);
    if (pids.length !== 1) throw new Error(`expected one process matching ${pattern}, found ${pids.length}`);
    return pids[0]!;
  };
  const answersWithin = async (what: () => Promise<string>, expected: RegExp, ms: number) => {
    const t0 = Date.now();
    let last = '';
    while (Date.now() - t0 < ms) {
      last = await what().catch((err: Error) => err.message);
      if (expected.test(last)) return Date.now() - t0;
      await sleep(200);
    }
    throw new Error(`no answer matching ${expected} within ${ms} ms; last: ${last.slice(0, 300)}`);
  };

  it('kill -9 of ipmi_sim: the lab restarts it on the same port and ipmitool reads the power state it had (on)', async () => {
    const s = inventory.servers[1]!;
    const port = new URL(lab.member(s.name).bmcAddress.replace('ipmi://', 'http://')).port;
    const ipmitool = (...a: string[]) => run('ipmitool', ['-I', 'lanplus', '-C', '3', '-N', '1', '-R', '1', '-H', '127.0.0.1', '-p', port, '-U', s.bmc.username, '-E', ...a], { env: { ...process.env, IPMI_PASSWORD: s.bmc.password } }).then((r) => r.stdout);
    await ipmitool('chassis', 'power', 'on');
    expect(await ipmitool('chassis', 'power', 'status')).toContain('Chassis Power is on');
    const pid = await pidOf(`ipmi_sim -c ${work}/lab/ipmi/${s.name}/`);
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    // The kill took: that process is gone (ipmi_sim restarts in ~250 ms, faster than an ipmitool call could show the gap).
    for (let i = 0; i < 50 && isAlive(pid); i++) await sleep(20);
    expect(isAlive(pid)).toBe(false);
    await answersWithin(() => ipmitool('chassis', 'power', 'status'), /Chassis Power is on/, 15_000);
    process.stdout.write(`lab-bmc-cli: ipmi_sim answered again ${Date.now() - killedAt} ms after kill -9\n`);
    const newPid = await pidOf(`ipmi_sim -c ${work}/lab/ipmi/${s.name}/`);
    expect(newPid).not.toBe(pid);
    expect(labLog.some((l) => l.includes(`ipmi_sim of ${s.name} (udp ${port}) (pid ${pid}) exited with SIGKILL; restarting it`))).toBe(true);
    expect(labLog.some((l) => l.includes(`ipmi_sim of ${s.name} (udp ${port}) answers again (pid ${newPid}`))).toBe(true);
    // The lab's event stream (logged at info by the plane) names the server whose BMC went down and came back.
    expect(events.filter((x) => x.server === s.name && (x.e.kind === 'bmc-down' || x.e.kind === 'bmc-up')).map((x) => x.e)).toEqual([
      { kind: 'bmc-down', reason: 'ipmi_sim exited with SIGKILL', restartInMs: 250 },
      { kind: 'bmc-up', msSinceRestart: expect.any(Number) },
    ]);
    expect(events.some((x) => x.server !== s.name && x.e.kind === 'bmc-down')).toBe(false);
    // The restarted BMC still drives the server.
    await ipmitool('chassis', 'power', 'off');
    for (let i = 0; i < 50 && lab.member(s.name).sim!.poweredOn; i++) await sleep(100);
    expect(lab.member(s.name).sim!.poweredOn).toBe(false);
  }, 60_000);

  it('kill -9 of sushy-emulator: the lab restarts it behind the same address and curl reads the power state it had (On)', async () => {
    const s = inventory.servers[0]!;
    const system = lab.member(s.name).bmcAddress.replace('redfish+http://', 'http://');
    const curl = (...a: string[]) => run('curl', ['-sS', '-f', '-m', '3', '-u', `${s.bmc.username}:${s.bmc.password}`, ...a]).then((r) => r.stdout);
    // The earlier test powered it on; sushy applies power actions on a later read, so poll until it shows.
    await answersWithin(() => curl(system), /"PowerState":\s*"On"/, 30_000);
    const pid = await pidOf(`${work}/lab/sushy/shard-0/sushy.conf`);
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    await expect(curl(system)).rejects.toThrow();
    await answersWithin(() => curl(system), /"PowerState":\s*"On"/, 30_000);
    process.stdout.write(`lab-bmc-cli: sushy-emulator answered again ${Date.now() - killedAt} ms after kill -9\n`);
    expect(await pidOf(`${work}/lab/sushy/shard-0/sushy.conf`)).not.toBe(pid);
    expect(labLog.some((l) => l.includes(`sushy-emulator shard-0 (pid ${pid}) exited with SIGKILL; restarting it`))).toBe(true);
    expect(events.filter((x) => x.server === s.name && x.e.kind === 'bmc-down').map((x) => x.e)).toEqual([{ kind: 'bmc-down', reason: 'sushy-emulator exited with SIGKILL', restartInMs: 250 }]);
    expect(lab.member(s.name).sim!.poweredOn).toBe(true);
  }, 60_000);
});
