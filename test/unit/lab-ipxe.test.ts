/**
 * The lab's iPXE script runner (lab/sim/ipxe.ts) on the scripts Ironflow
 * really renders (activities/pxe/ipxe-script.ts) and on an Ironic-style retry
 * loop: what it loads, what it boots, and why it exits. Fetches are in-memory
 * here; test/e2e/lab-firmware.test.ts runs the same code over real TFTP/HTTP.
 */
import { renderChainScript, renderHostScript } from '../../activities/pxe/ipxe-script';
import { runIpxeScript, type IpxeHost } from '../../lab/sim/ipxe';

const BASE = 'http://10.99.0.1:8080';
const MAC = '52:54:00:12:34:56';

function host(scripts: Record<string, string>, failFirst: Record<string, number> = {}) {
  const calls: string[] = [];
  const sleeps: number[] = [];
  const loaded: { kernel?: { url: string; args: string }; initrd?: string } = {};
  const attempt = (url: string) => {
    calls.push(url);
    if ((failFirst[url] ?? 0) > 0) {
      failFirst[url]! -= 1;
      throw new Error('Connection timed out');
    }
  };
  const h: IpxeHost = {
    vars: { mac: MAC, platform: 'pcbios' },
    fetchScript: async (url) => {
      attempt(url);
      const s = scripts[url];
      if (s === undefined) throw new Error(`HTTP 404`);
      return s;
    },
    loadKernel: async (url, args) => {
      attempt(url);
      loaded.kernel = { url, args };
    },
    loadInitrd: async (url) => {
      attempt(url);
      loaded.initrd = url;
    },
    sleep: async (ms) => void sleeps.push(ms),
  };
  return { h, calls, sleeps, loaded };
}

const chain = renderChainScript({ baseUrl: BASE });
const perMac = `${BASE}/boot/52-54-00-12-34-56.ipxe`;
const TOKEN = 'q0Z3bA8mYfV1Yx1pE9n2kQ7sL4cR6tU0wH5jG3dF2aB';
const entry = (mode: 'agent' | 'disk' | 'none') => ({ mac: MAC, host: { namespace: 'lab', name: 'h1' }, mode, bootId: 'b-1', kernelArgs: ['lab.extra=1'], preparedAt: '2026-01-01T00:00:00Z' });
const render = (mode: 'agent' | 'disk' | 'none') => renderHostScript({ entry: entry(mode), baseUrl: BASE, ...(mode === 'agent' ? { token: TOKEN } : {}) });

describe("the lab's iPXE runner on Ironflow's scripts", () => {
  it('agent mode: chains to the per-MAC script, loads kernel and initrd, passes the kernel command line unchanged, boots', async () => {
    const script = render('agent');
    const { h, calls, loaded } = host({ [perMac]: script });
    expect(await runIpxeScript(chain, h)).toEqual({ kind: 'boot' });
    expect(calls).toEqual([perMac, `${BASE}/files/ironflow-agent.vmlinuz`, `${BASE}/files/ironflow-agent.initramfs`]);
    // Exactly the words after the kernel URL on the script's kernel line (up to its `|| goto`), the extra argument included.
    const kernelLine = /^kernel \S+ (.*?) \|\| goto retry$/m.exec(script)![1];
    expect(loaded.kernel!.args).toBe(kernelLine);
    expect(loaded.kernel!.args.split(' ')).toEqual(expect.arrayContaining(['ironflow.boot=b-1', `ironflow.token=${TOKEN}`, 'lab.extra=1']));
  });

  it('disk mode on BIOS: sanboot', async () => {
    const { h } = host({ [perMac]: render('disk') });
    expect(await runIpxeScript(chain, h)).toEqual({ kind: 'sanboot' });
  });

  it('none mode and unknown MACs exit non-zero, so the firmware tries its next boot device', async () => {
    const none = host({ [perMac]: render('none') });
    expect(await runIpxeScript(chain, none.h)).toMatchObject({ kind: 'exit', code: 1 });
    const unknown = host({});
    const out = await runIpxeScript(chain, unknown.h);
    expect(out).toMatchObject({ kind: 'exit', code: 1, reason: expect.stringContaining('HTTP 404') });
  });

  it('a lost kernel transfer is retried inside the once-served script (growing sleeps), never by fetching the script again', async () => {
    const kernel = `${BASE}/files/ironflow-agent.vmlinuz`;
    const { h, calls, sleeps } = host({ [perMac]: render('agent') }, { [kernel]: 2 });
    expect(await runIpxeScript(chain, h)).toEqual({ kind: 'boot' });
    expect(calls.filter((c) => c === kernel)).toHaveLength(3);
    expect(calls.filter((c) => c === perMac)).toHaveLength(1);
    expect(sleeps).toEqual([1000, 2000]);
  });

  it('a kernel that cannot be fetched in 5 tries exits, saying what failed', async () => {
    const kernel = `${BASE}/files/ironflow-agent.vmlinuz`;
    const { h, calls } = host({ [perMac]: render('agent') }, { [kernel]: 99 });
    const out = await runIpxeScript(chain, h);
    expect(out).toMatchObject({ kind: 'exit', code: 1, reason: expect.stringMatching(/kernel http:\/\/10\.99\.0\.1:8080\/files\/ironflow-agent\.vmlinuz: Connection timed out/) });
    expect(calls.filter((c) => c === kernel)).toHaveLength(5);
    // No initrd fetch after a failed kernel, no boot.
    expect(calls.filter((c) => c.endsWith('.initramfs'))).toEqual([]);
  });

  it('an Ironic-style retry loop retries the kernel with growing sleeps and then boots', async () => {
    const script = [
      '#!ipxe',
      'set attempts:int32 10',
      'set i:int32 0',
      ':deploy',
      'imgfree',
      `kernel --timeout 120 ${BASE}/k BOOTIF=\${mac} initrd=r || goto retry`,
      `initrd --timeout 120 ${BASE}/r || goto retry`,
      'boot',
      ':retry',
      'iseq ${i} ${attempts} && goto fail ||',
      'inc i',
      'sleep ${i}',
      'goto deploy',
      ':fail',
      'exit 1',
    ].join('\n');
    const { h, sleeps, loaded } = host({}, { [`${BASE}/k`]: 2 });
    expect(await runIpxeScript(script, h)).toEqual({ kind: 'boot' });
    expect(sleeps).toEqual([1000, 2000]);
    expect(loaded.kernel!.args).toBe(`BOOTIF=${MAC} initrd=r`);
  });

  it('a script that loops forever is stopped, and a non-script is refused', async () => {
    const { h } = host({});
    expect(await runIpxeScript('#!ipxe\n:a\ngoto a\n', h)).toMatchObject({ kind: 'exit', code: 1, reason: expect.stringContaining('more than') });
    expect(await runIpxeScript('<html>captive portal</html>', h)).toMatchObject({ kind: 'exit', code: 1, reason: expect.stringContaining('not an iPXE script') });
  });
});
