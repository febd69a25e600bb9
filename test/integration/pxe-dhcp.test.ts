/**
 * dnsmasq as Ironflow configures it, answering a real DHCP client
 * (busybox udhcpc) across a veth pair between two network namespaces this
 * test creates and deletes: nothing touches the root namespace's network.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { SessionStore } from '../../activities/agent/session-store';
import { startDhcp, type DhcpServer } from '../../activities/pxe/dhcp';

const run = promisify(execFile);
const ip = (...args: string[]) => run('ip', args, { timeout: 10_000 });

interface Lease {
  ip?: string;
  siaddr?: string;
  boot_file?: string;
  router?: string;
}

describe('dnsmasq configured by Ironflow, with a real DHCP client in a network namespace', () => {
  const id = randomBytes(3).toString('hex');
  const serverNs = `ifl-s-${id}`;
  const clientNs = `ifl-c-${id}`;
  const serverIf = `ifs${id}`;
  const clientIf = `ifc${id}`;
  let dir: string;
  let dhcp: DhcpServer | undefined;
  let registry: SessionStore;
  let clientMac: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ironflow-dhcp-'));
    mkdirSync(path.join(dir, 'tftp'));
    writeFileSync(path.join(dir, 'tftp', 'undionly.kpxe'), 'not really ipxe');
    await ip('netns', 'add', serverNs);
    await ip('netns', 'add', clientNs);
    await ip('link', 'add', serverIf, 'type', 'veth', 'peer', 'name', clientIf);
    await ip('link', 'set', serverIf, 'netns', serverNs);
    await ip('link', 'set', clientIf, 'netns', clientNs);
    await ip('-n', serverNs, 'addr', 'add', '10.99.0.1/24', 'dev', serverIf);
    await ip('-n', serverNs, 'addr', 'add', 'fd99::1/64', 'dev', serverIf, 'nodad');
    await ip('-n', serverNs, 'link', 'set', serverIf, 'up');
    await ip('-n', clientNs, 'link', 'set', clientIf, 'up');
    const link = await ip('-n', clientNs, '-j', 'link', 'show', clientIf);
    clientMac = (JSON.parse(link.stdout) as { address: string }[])[0]!.address;
    registry = await SessionStore.open();
    dhcp = await startDhcp({
      interface: serverIf,
      netns: serverNs,
      range: { mode: 'serve', start: '10.99.0.100', end: '10.99.0.150', leaseTime: '1h' },
      chainUrl: 'http://10.99.0.1:8080/boot.ipxe',
      tftpServer: '10.99.0.1',
      tftpRoot: path.join(dir, 'tftp'),
      stateDir: path.join(dir, 'state'),
      log: pino({ level: 'silent' }),
      onMacSeen: (seen) => void registry.recordUnknown({ mac: seen.mac, sourceIp: seen.ip, source: 'dhcp' }),
    });
  }, 30_000);

  afterAll(async () => {
    await dhcp?.stop();
    // Deleting the namespaces deletes the veth pair with them.
    await ip('netns', 'del', serverNs).catch(() => undefined);
    await ip('netns', 'del', clientNs).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  /** One DHCP exchange with udhcpc; `extra` adds options to the client's packets. */
  async function lease(extra: string[] = []): Promise<Lease> {
    const script = path.join(dir, 'udhcpc.sh');
    writeFileSync(script, '#!/bin/sh\n[ "$1" = bound ] && echo "LEASE ip=$ip siaddr=$siaddr boot_file=$boot_file router=$router"\nexit 0\n');
    chmodSync(script, 0o755);
    const { stdout } = await run('ip', ['netns', 'exec', clientNs, 'busybox', 'udhcpc', '-i', clientIf, '-f', '-q', '-n', '-t', '5', '-T', '1', '-s', script, ...extra], {
      timeout: 20_000,
    });
    const line = stdout.split('\n').find((l) => l.startsWith('LEASE '));
    if (!line) throw new Error(`udhcpc got no lease:\n${stdout}`);
    return Object.fromEntries(line.slice(6).split(' ').map((kv) => kv.split('=') as [string, string]).filter(([, v]) => v)) as Lease;
  }

  it('gives a plain PXE client an address in the range and iPXE over TFTP (undionly.kpxe from the TFTP server)', async () => {
    const l = await lease();
    expect(l.ip).toMatch(/^10\.99\.0\.(1[0-4]\d|150)$/);
    expect(l.boot_file).toBe('undionly.kpxe');
    expect(l.siaddr).toBe('10.99.0.1');
    expect(l.router).toBeUndefined();
  });

  it('gives an iPXE client (option 175 in its request) the HTTP chain script', async () => {
    const l = await lease(['-x', '0xaf:0101']);
    expect(l.boot_file).toBe('http://10.99.0.1:8080/boot.ipxe');
  });

  it('writes the lease under the state dir and reports the client MAC for discovery', async () => {
    expect(readFileSync(path.join(dir, 'state', 'dnsmasq.leases'), 'utf8')).toContain(clientMac);
    // Two exchanges, each one DHCPDISCOVER + one DHCPREQUEST from the client.
    expect(registry.discovered()).toEqual([expect.objectContaining({ mac: clientMac, source: 'dhcp', count: 4, sourceIp: expect.stringMatching(/^10\.99\.0\./) })]);
    expect(readFileSync(path.join(dir, 'state', 'dnsmasq.log'), 'utf8')).toMatch(/DHCPACK\(/);
  });
});
