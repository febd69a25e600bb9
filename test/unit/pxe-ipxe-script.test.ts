import { AGENT_BOOT_FILES } from '../../api/pxe';
import type { BootEntry } from '../../activities/pxe/boot-registry';
import { checkBaseUrl, renderChainScript, renderHostScript } from '../../activities/pxe/ipxe-script';

const entry = (over: Partial<BootEntry> = {}): BootEntry => ({
  mac: '52:54:00:12:34:56',
  host: { namespace: 'metal3', name: 'server-01' },
  mode: 'agent',
  bootId: '0b6f6c1e-3f7a-4e55-9d0e-1c2b3a4d5e6f',
  kernelArgs: [],
  preparedAt: '2026-01-01T00:00:00.000Z',
  ...over,
});
const base = 'http://10.99.0.1:8080';

describe('iPXE scripts', () => {
  it('the chain script fetches the per-MAC script with iPXE\'s own ${mac:hexhyp} and exits for unknown machines', () => {
    expect(renderChainScript({ baseUrl: base + '/' })).toBe(
      [
        '#!ipxe',
        "# Ironflow: fetch this machine's own script; unknown machines fall through to the next boot device.",
        'chain --autofree http://10.99.0.1:8080/boot/${mac:hexhyp}.ipxe || goto unknown',
        ':unknown',
        'echo Ironflow has no boot entry for ${mac} (reported for discovery); trying the next boot device',
        'exit 1',
        '',
      ].join('\n'),
    );
  });

  it('mode agent: kernel and initramfs over HTTP from /files/, with the API URL and boot id on the command line', () => {
    const s = renderHostScript({ entry: entry({ kernelArgs: ['ironflow.debug=1'] }), baseUrl: base });
    const lines = s.split('\n');
    expect(lines[0]).toBe('#!ipxe');
    const kernel = lines.find((l) => l.startsWith('kernel '))!;
    expect(kernel).toBe(
      `kernel ${base}/files/${AGENT_BOOT_FILES.kernel} initrd=${AGENT_BOOT_FILES.initramfs} ironflow.api=${base} ` +
        'ironflow.boot=0b6f6c1e-3f7a-4e55-9d0e-1c2b3a4d5e6f console=tty0 console=ttyS0,115200n8 panic=30 ironflow.debug=1 || goto failed',
    );
    expect(lines).toContain(`initrd ${base}/files/${AGENT_BOOT_FILES.initramfs} || goto failed`);
    expect(lines).toContain('boot || goto failed');
  });

  it('mode disk: sanboot the first disk on BIOS, exit to the firmware otherwise', () => {
    const s = renderHostScript({ entry: entry({ mode: 'disk' }), baseUrl: base });
    expect(s).toContain('iseq ${platform} pcbios || exit\nsanboot --no-describe --drive 0x80 || exit\n');
    expect(s).not.toContain('kernel');
  });

  it('mode none: exits so the machine does not boot from the network', () => {
    expect(renderHostScript({ entry: entry({ mode: 'none' }), baseUrl: base })).toMatch(/\nexit 1\n$/);
  });

  it.each([
    ['a newline (would add a script line)', 'a\nshell'],
    ['an iPXE variable expansion', '${net0/mac}'],
    ['a space (would split the argument)', 'a b'],
  ])('refuses a kernel argument with %s', (_what, arg) => {
    expect(() => renderHostScript({ entry: entry({ kernelArgs: [arg] }), baseUrl: base })).toThrow(/kernel argument/);
  });

  it.each(['ftp://10.99.0.1/', 'http://user:pw@10.99.0.1/', 'http://10.99.0.1/?x=1', 'not a url'])('refuses the base URL %s', (url) => {
    expect(() => checkBaseUrl(url)).toThrow(/base URL/);
  });

  it('refuses a boot id that could break the script', () => {
    expect(() => renderHostScript({ entry: entry({ bootId: 'x y' }), baseUrl: base })).toThrow(/boot id/);
  });
});
