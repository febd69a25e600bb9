import { AGENT_BOOT_FILES } from '../../api/pxe';
import type { HostRef } from '../../api/host';
import type { BootRecord } from '../../activities/agent/session-state';
import { checkBaseUrl, renderChainScript, renderHostScript } from '../../activities/pxe/ipxe-script';

const entry = (over: Partial<BootRecord & { host: HostRef }> = {}): BootRecord & { host: HostRef } => ({
  mac: '52:54:00:12:34:56',
  host: { namespace: 'metal3', name: 'server-01' },
  mode: 'agent',
  bootId: '0b6f6c1e-3f7a-4e55-9d0e-1c2b3a4d5e6f',
  kernelArgs: [],
  preparedAt: '2026-01-01T00:00:00.000Z',
  ...over,
});
const base = 'http://10.99.0.1:8080';
const token = 'q0Z3bA8mYfV1Yx1pE9n2kQ7sL4cR6tU0wH5jG3dF2aB';

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

  it('mode agent: kernel and initramfs over HTTP from /files/, with the API URL, boot id and token on the command line', () => {
    const s = renderHostScript({ entry: entry({ kernelArgs: ['ironflow.debug=1'] }), baseUrl: base, token });
    const lines = s.split('\n');
    expect(lines[0]).toBe('#!ipxe');
    const kernel = lines.find((l) => l.startsWith('kernel '))!;
    expect(kernel).toBe(
      `kernel ${base}/files/${AGENT_BOOT_FILES.kernel} initrd=${AGENT_BOOT_FILES.initramfs} ironflow.api=${base} ` +
        `ironflow.boot=0b6f6c1e-3f7a-4e55-9d0e-1c2b3a4d5e6f ironflow.token=${token} console=tty0 console=ttyS0,115200n8 panic=30 ironflow.debug=1 || goto retry`,
    );
    expect(lines).toContain(`initrd ${base}/files/${AGENT_BOOT_FILES.initramfs} || goto retry`);
    expect(lines).toContain('boot || goto failed');
    // Transfers are retried inside the script (it is served once), 5 tries with growing sleeps.
    expect(lines).toEqual(expect.arrayContaining(['set tries:int32 0', 'inc tries', 'iseq ${tries} 5 && goto failed ||', 'sleep ${tries}', 'goto fetch']));
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
    expect(() => renderHostScript({ entry: entry({ kernelArgs: [arg] }), baseUrl: base, token })).toThrow(/kernel argument/);
  });

  it.each(['ftp://10.99.0.1/', 'http://user:pw@10.99.0.1/', 'http://10.99.0.1/?x=1', 'not a url'])('refuses the base URL %s', (url) => {
    expect(() => checkBaseUrl(url)).toThrow(/base URL/);
  });

  it('refuses a boot id that could break the script', () => {
    expect(() => renderHostScript({ entry: entry({ bootId: 'x y' }), baseUrl: base, token })).toThrow(/boot id/);
  });

  it.each([
    ['no token', undefined],
    ['a token with a space (would split the argument)', 'abc def'.repeat(4)],
    ['a token with an iPXE expansion', '${net0/mac}'.repeat(3)],
  ])('an agent boot with %s is not rendered, and the error does not repeat the value', (_what, bad) => {
    expect(() => renderHostScript({ entry: entry(), baseUrl: base, token: bad })).toThrow(/needs its token/);
    if (bad) expect(() => renderHostScript({ entry: entry(), baseUrl: base, token: bad })).not.toThrow(bad);
  });
});
