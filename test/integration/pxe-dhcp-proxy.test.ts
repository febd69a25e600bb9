/**
 * Proxy-DHCP: another DHCP server owns the addresses, Ironflow's dnsmasq only
 * adds PXE boot information. Four network namespaces made by this test (a
 * "switch" with a bridge, the other DHCP server, Ironflow, a client), deleted
 * at the end; nothing touches the root namespace's network.
 *
 * busybox udhcpc is no PXE ROM: it cannot follow the PXE boot-server exchange
 * (UDP 4011) that turns the proxy's boot menu into a file name, so the test
 * checks what the proxy sends (option 43 boot menu, no address) from its
 * log, and that a non-PXE client is left to the other server.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { startDhcp, type DhcpServer } from '../../activities/pxe/dhcp';

const run = promisify(execFile);
const ip = (...args: string[]) => run('ip', args, { timeout: 10_000 });

describe('dnsmasq in proxy-DHCP mode beside another DHCP server (network namespaces)', () => {
  const id = randomBytes(3).toString('hex');
  const ns = { sw: `ifp-sw-${id}`, other: `ifp-o-${id}`, iron: `ifp-i-${id}`, client: `ifp-c-${id}` };
  const ifs = { other: `ipo${id}`, iron: `ipi${id}`, client: `ipc${id}` };
  let dir: string;
  let dhcp: DhcpServer | undefined;
  let otherServer: ChildProcess | undefined;
  const seen: { mac: string; event: string }[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ironflow-proxy-'));
    writeFileSync(path.join(dir, 'undionly.kpxe'), 'x');
    for (const n of Object.values(ns)) await ip('netns', 'add', n);
    await ip('-n', ns.sw, 'link', 'add', 'br0', 'type', 'bridge');
    await ip('-n', ns.sw, 'link', 'set', 'br0', 'up');
    for (const role of ['other', 'iron', 'client'] as const) {
      const inner = ifs[role];
      const outer = `${inner}b`;
      await ip('link', 'add', inner, 'type', 'veth', 'peer', 'name', outer);
      await ip('link', 'set', inner, 'netns', ns[role]);
      await ip('link', 'set', outer, 'netns', ns.sw);
      await ip('-n', ns.sw, 'link', 'set', outer, 'master', 'br0', 'up');
      await ip('-n', ns[role], 'link', 'set', inner, 'up');
    }
    await ip('-n', ns.other, 'addr', 'add', '10.99.0.2/24', 'dev', ifs.other);
    await ip('-n', ns.iron, 'addr', 'add', '10.99.0.1/24', 'dev', ifs.iron);

    // The "other" DHCP server: a plain dnsmasq that knows nothing about PXE.
    const conf = path.join(dir, 'other.conf');
    writeFileSync(conf, `port=0\ninterface=${ifs.other}\nbind-interfaces\ndhcp-leasefile=${dir}/other.leases\ndhcp-range=10.99.0.100,10.99.0.150,1h\n`);
    otherServer = spawn('ip', ['netns', 'exec', ns.other, '/usr/sbin/dnsmasq', '--keep-in-foreground', `--conf-file=${conf}`, '--user=root', '--pid-file', '--log-facility=-'], { stdio: 'ignore' });

    dhcp = await startDhcp({
      interface: ifs.iron,
      netns: ns.iron,
      range: { mode: 'proxy', network: '10.99.0.0' },
      chainUrl: 'http://10.99.0.1:8080/boot.ipxe',
      tftpServer: '10.99.0.1',
      tftpRoot: dir,
      raPrefix: null,
      stateDir: path.join(dir, 'state'),
      log: pino({ level: 'silent' }),
      onMacSeen: (s) => seen.push(s),
    });
  }, 30_000);

  afterAll(async () => {
    await dhcp?.stop();
    otherServer?.kill('SIGTERM');
    for (const n of Object.values(ns)) await ip('netns', 'del', n).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  async function udhcpc(extra: string[]): Promise<string> {
    const script = path.join(dir, 'udhcpc.sh');
    writeFileSync(script, '#!/bin/sh\n[ "$1" = bound ] && echo "LEASE ip=$ip serverid=$serverid"\nexit 0\n');
    chmodSync(script, 0o755);
    const { stdout } = await run('ip', ['netns', 'exec', ns.client, 'busybox', 'udhcpc', '-i', ifs.client, '-f', '-q', '-n', '-t', '5', '-T', '1', '-s', script, ...extra], { timeout: 20_000 }).catch(
      (err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }),
    );
    return stdout;
  }

  it('leaves a client that is not PXE to the other server (the address comes from 10.99.0.2)', async () => {
    const out = await udhcpc([]);
    expect(out).toMatch(/LEASE ip=10\.99\.0\.1[0-5]\d serverid=10\.99\.0\.2/);
    expect(seen.filter((s) => s.event === 'PXE')).toEqual([]);
  });

  it('answers a PXE client with a proxy offer: boot menu (option 43), no address, and reports its MAC', async () => {
    const clientMac = (JSON.parse((await ip('-n', ns.client, '-j', 'link', 'show', ifs.client)).stdout) as { address: string }[])[0]!.address;
    // What a BIOS PXE ROM sends: vendor class PXEClient, client arch 0 (option 93), UUID (97), UNDI version (94).
    await udhcpc(['-V', 'PXEClient:Arch:00000:UNDI:002001', '-x', '0x5d:0000', '-x', '0x61:00000102030405060708090a0b0c0d0e0f', '-x', '0x5e:010201']);
    const log = readFileSync(path.join(dir, 'state', 'dnsmasq.log'), 'utf8');
    expect(log).toContain(`PXE(${ifs.iron}) ${clientMac} proxy`);
    expect(log).toMatch(/option: 43 vendor-encap/);
    expect(log).not.toMatch(/DHCPOFFER/);
    expect(seen).toContainEqual(expect.objectContaining({ mac: clientMac, event: 'PXE' }));
  });
});
