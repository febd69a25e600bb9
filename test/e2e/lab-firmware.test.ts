/**
 * The simulated firmware on a lossy provisioning network: lab servers whose
 * path to Ironflow's real PXE services (TFTP, HTTP) loses packets or resets
 * connections (a real UDP/TCP relay on loopback, lab/sim/pxe-fault-path.ts)
 * still boot the agent: the TFTP timer retransmits within a transfer, and a
 * boot attempt that fails falls through and is retried by the boot order, as
 * BIOS boot retry does. Servers are powered on through their real BMC
 * (ipmi_sim, driven by ipmitool).
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import pino from 'pino';
import type { LabInventory, LabServer } from '../../api/lab';
import { AGENT_BOOT_FILES } from '../../api/pxe';
import { projectRoot } from '../../api/project-root';
import { startLab, type Lab } from '../../lab/lab';
import type { BootEvent } from '../../lab/sim/server';
import { startProvisioning, type ProvisioningServices } from '../../workers/provisioning';
import { temporalTestContext, type TemporalTestContext } from '../helpers/env';
import { registerTestSecret } from '../helpers/secrets';

const run = promisify(execFile);

const server = (name: string, i: number, faults: LabServer['faults']): LabServer => ({
  name,
  vendor: 'Supermicro',
  model: 'X11',
  cpus: 2,
  memoryMiB: 2048,
  disks: [{ name: 'sda', sizeGiB: 0.0625, serialNumber: `FW-${i}` }],
  nics: [{ name: 'eth0', mac: `52:54:00:f1:00:0${i}` }],
  bmc: { protocol: 'ipmi', username: 'admin', password: `fw-${randomBytes(6).toString('hex')}` },
  firmware: { bootRetrySeconds: 2 },
  faults,
});

describe('simulated PXE firmware on a lossy path still boots the agent', () => {
  let temporal: TemporalTestContext;
  let pxe: ProvisioningServices;
  let lab: Lab;
  let work: string;
  const events: Array<{ server: string; e: BootEvent; at: number }> = [];
  const labLog: string[] = [];
  const tftpLines: Array<Record<string, unknown>> = [];
  const inventory: LabInventory = {
    namespace: 'fw',
    servers: [
      // 3 datagrams lost: the read request is retransmitted inside one transfer.
      server('tftp-lossy', 1, [{ fault: 'pxe-tftp-loss', count: 3 }]),
      // 10 lost: more than the 9 sends of one read request, so the first attempt fails.
      server('tftp-dead', 2, [{ fault: 'pxe-tftp-loss', count: 10 }]),
      // The first HTTP connection (the chain script) is reset.
      server('http-reset', 3, [{ fault: 'pxe-http-loss', count: 1 }]),
      // Negative control: a clean path.
      server('clean', 4, []),
    ],
  };

  const bootIds = new Map<string, string>();
  beforeAll(async () => {
    registerTestSecret(...inventory.servers.map((s) => s.bmc.password));
    temporal = await temporalTestContext('fw');
    work = mkdtempSync(join(tmpdir(), 'ironflow-fw-'));
    const log = pino({ level: 'info' }, { write: (line: string) => {
      const o = JSON.parse(line) as Record<string, unknown>;
      if (o.component === 'pxe-tftp') tftpLines.push(o);
    } });
    const files = join(work, 'files');
    pxe = await startProvisioning({ stateDir: join(work, 'pxe'), filesDir: files, bindHost: '127.0.0.1', httpPort: 0, tftpPort: 0, client: temporal.client, log });
    for (const f of Object.values(AGENT_BOOT_FILES)) copyFileSync(join(projectRoot(__dirname), '.ironflow', 'boot', f), join(files, f));
    lab = await startLab({ inventory, workDir: join(work, 'lab'), pxe: { httpUrl: pxe.httpUrl, tftp: pxe.tftp }, onEvent: (s, e) => events.push({ server: s, e, at: Date.now() }), log: (l) => labLog.push(l) });
    for (const s of inventory.servers) {
      // An agent session as the plane starts one, with an extra kernel argument beside the token.
      const { bootId } = await pxe.sessions.startSession({ namespace: 'fw', name: s.name }, s.nics[0]!.mac, { command: { id: `inspect-${s.name}`, type: 'inspect' }, expected: {}, kernelArgs: [`lab.marker=${s.name}`] });
      bootIds.set(s.name, bootId);
    }
  });
  afterAll(async () => {
    await lab?.stop();
    await pxe?.stop();
    await temporal?.close();
  });

  const ipmitool = (s: LabServer, ...a: string[]) => {
    const port = new URL(lab.member(s.name).bmcAddress.replace('ipmi://', 'http://')).port;
    return run('ipmitool', ['-I', 'lanplus', '-C', '3', '-H', '127.0.0.1', '-p', port, '-U', s.bmc.username, '-E', ...a], { env: { ...process.env, IPMI_PASSWORD: s.bmc.password } });
  };
  const powerOnPxe = async (s: LabServer) => {
    await ipmitool(s, 'chassis', 'bootdev', 'pxe');
    await ipmitool(s, 'chassis', 'power', 'on');
  };
  const agentBoot = async (name: string, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const hit = events.find((x) => x.server === name && x.e.kind === 'netboot' && x.e.script === 'agent');
      if (hit) return hit;
      await sleep(100);
    }
    throw new Error(`${name} did not boot the agent in ${timeoutMs} ms; its events: ${JSON.stringify(events.filter((x) => x.server === name).map((x) => x.e))}`);
  };
  const of = (name: string) => events.filter((x) => x.server === name).map((x) => x.e);

  it('all four servers boot the agent; lost TFTP datagrams cost a retransmission, a dead TFTP transfer a retry inside the boot script, a reset HTTP path one boot retry', async () => {
    const [lossy, dead, reset, clean] = inventory.servers as [LabServer, LabServer, LabServer, LabServer];
    const t0 = Date.now();
    // What the host workflow does when the plane ends a boot (its script fetched twice): start a fresh session.
    // None of these paths should need it: the script retries lost transfers itself.
    let renewed = 0;
    const renewer = setInterval(() => {
      for (const s of inventory.servers) {
        const host = { namespace: 'fw', name: s.name };
        if (pxe.sessions.currentSession(host)?.state !== 'invalidated') continue;
        renewed++;
        void pxe.sessions
          .startSession(host, s.nics[0]!.mac, { command: { id: `inspect-${s.name}-${renewed}`, type: 'inspect' }, expected: {}, kernelArgs: [`lab.marker=${s.name}`] })
          .then(({ bootId }) => bootIds.set(s.name, bootId));
      }
    }, 200);
    await Promise.all([lossy, dead, reset, clean].map(powerOnPxe));
    try {
      await Promise.all([agentBoot(clean.name, 20_000), agentBoot(lossy.name, 30_000), agentBoot(dead.name, 60_000), agentBoot(reset.name, 30_000)]);
    } finally {
      clearInterval(renewer);
    }
    process.stdout.write(`lab-firmware: all four booted the agent ${((Date.now() - t0) / 1000).toFixed(1)} s after power on\n`);

    // The relays lost exactly what the faults say, and nothing on the clean server's path (it has none).
    const losses = (name: string) => labLog.filter((l) => l.startsWith(`lab: ${name} pxe-`)).length;
    expect([losses(lossy.name), losses(dead.name), losses(reset.name), losses(clean.name)]).toEqual([3, 10, 1, 0]);
    // Clean path: one attempt, no failure.
    expect(of(clean.name).filter((e) => e.kind === 'netboot-failed' || e.kind === 'no-boot-device')).toEqual([]);
    // 3 lost datagrams: no failed attempt; the read request was sent again on the 1 s timer, three times.
    expect(of(lossy.name).filter((e) => e.kind === 'netboot-failed')).toEqual([]);
    expect((of(lossy.name).find((e) => e.kind === 'netboot') as { ms: number }).ms).toBeGreaterThanOrEqual(3_000);
    // Dead TFTP path: the first kernel transfer gave up (more datagrams lost than one read request is sent), and the
    // once-served boot script retried it after a 1 s sleep, so the boot's script was fetched once and no session ended.
    expect(renewed).toBe(0);
    expect(pxe.sessions.currentSession({ namespace: 'fw', name: dead.name })?.command.id).toBe(`inspect-${dead.name}`);
    const deadEvents = of(dead.name);
    expect(deadEvents.filter((e) => e.kind === 'netboot-failed' || e.kind === 'no-boot-device')).toEqual([]);
    expect((deadEvents.find((e) => e.kind === 'netboot') as { ms: number }).ms).toBeGreaterThanOrEqual(9_000);
    // Reset HTTP connection: the chain script fetch failed, the retry booted the agent.
    expect(of(reset.name).find((e) => e.kind === 'netboot-failed')).toMatchObject({ reason: expect.stringMatching(/boot\.ipxe/) });
    expect(of(reset.name).filter((e) => e.kind === 'netboot-failed')).toHaveLength(1);
    // Every agent boot fetched its kernel over the plane's real TFTP server, whole.
    const sent = tftpLines.filter((l) => l.file === AGENT_BOOT_FILES.kernel && l.outcome === 'sent');
    expect(sent.length).toBeGreaterThanOrEqual(4);
    for (const name of [lossy.name, dead.name, reset.name, clean.name]) {
      expect((of(name).find((e) => e.kind === 'netboot' && e.script === 'agent') as { kernelBytes: number }).kernelBytes).toBe(sent[0]!.bytes);
    }
    // The agent's /proc/cmdline carries the served script's kernel arguments, the plane's extra one included
    // (test/unit/lab-ipxe.test.ts checks the whole line word for word).
    for (const s of [lossy, dead, reset, clean]) {
      // Rewritten as the kernel starts, just after the netboot event (the one from power-on has boot id "none").
      const file = join(work, 'lab', 'servers', s.name, 'sysroot', 'proc', 'cmdline');
      const read = () => (existsSync(file) ? readFileSync(file, 'utf8') : '');
      const bootId = bootIds.get(s.name)!;
      for (let i = 0; i < 50 && !read().includes(`ironflow.boot=${bootId}`); i++) await sleep(100);
      const words = read().trim().split(' ');
      expect(words).toEqual(expect.arrayContaining([`ironflow.boot=${bootId}`, `lab.marker=${s.name}`, 'initrd=ironflow-agent.initramfs']));
      // The token rides on the same line (never handed out on request).
      expect(words.some((w) => /^ironflow\.token=[A-Za-z0-9_-]{20,}$/.test(w))).toBe(true);
    }
    for (const s of [lossy, dead, reset, clean]) await ipmitool(s, 'chassis', 'power', 'off');
  }, 120_000);
});
