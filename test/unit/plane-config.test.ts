import { join } from 'node:path';
import { planeCommand, planeConfigFrom } from '../../workers/config';
import { withoutLabOptions } from '../../scripts/start';

/** Parses argv with these environment variables set (commander reads them at parse time). */
function parse(argv: string[], env: Record<string, string> = {}) {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    const cmd = planeCommand().exitOverride();
    cmd.parse(argv, { from: 'user' });
    return planeConfigFrom(cmd.opts(), { ...process.env, ...env });
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

describe('the plane configuration', () => {
  const stateDir = '/tmp/ironflow-config-test';
  const own = join(stateDir, 'kubeconfig');

  it.each([
    ['the KUBECONFIG the README demo exports (the plane\'s own)', { KUBECONFIG: own }],
    ['the same path through --kubeconfig', {}],
    ['the own kubeconfig written relative', { KUBECONFIG: `${stateDir}/./kubeconfig` }],
  ])('%s is recognised: the embedded kube-apiserver starts, BMCs stay loopback-only', (_what, env) => {
    const argv = ['--state-dir', stateDir, ...(Object.keys(env).length === 0 ? ['--kubeconfig', own] : [])];
    const cfg = parse(argv, env);
    expect(cfg.kubeconfig).toBeUndefined();
    expect(cfg.kubeconfigIgnored).toContain("is this plane's own embedded cluster");
    expect(cfg.bmcLoopbackOnly).toBe(true);
  });

  it('another cluster\'s kubeconfig is used as the external management cluster (negative control)', () => {
    const cfg = parse(['--state-dir', stateDir], { KUBECONFIG: '/root/.kube/management.yaml' });
    expect(cfg.kubeconfig).toBe('/root/.kube/management.yaml');
    expect(cfg.kubeconfigIgnored).toBeUndefined();
    expect(cfg.bmcLoopbackOnly).toBe(false);
  });

  it('a KUBECONFIG list with another file in it is not the plane\'s own', () => {
    const cfg = parse(['--state-dir', stateDir], { KUBECONFIG: `${own}:/root/.kube/config` });
    expect(cfg.kubeconfig).toBe(`${own}:/root/.kube/config`);
  });

  it('foreign CRDs are overwritten only when asked, by flag or IRONFLOW_OVERWRITE_FOREIGN_CRDS=yes; "no" means no', () => {
    expect(parse(['--state-dir', stateDir]).overwriteForeignCrds).toBe(false);
    expect(parse(['--state-dir', stateDir, '--overwrite-foreign-crds']).overwriteForeignCrds).toBe(true);
    expect(parse(['--state-dir', stateDir], { IRONFLOW_OVERWRITE_FOREIGN_CRDS: 'yes' }).overwriteForeignCrds).toBe(true);
    expect(parse(['--state-dir', stateDir], { IRONFLOW_OVERWRITE_FOREIGN_CRDS: 'no' }).overwriteForeignCrds).toBe(false);
    expect(() => parse(['--state-dir', stateDir], { IRONFLOW_OVERWRITE_FOREIGN_CRDS: 'sure' })).toThrow('IRONFLOW_OVERWRITE_FOREIGN_CRDS="sure" is neither yes nor no');
  });

  it('DHCP on a provisioning network needs an interface and a range; the boot URL defaults to the PXE service', () => {
    const cfg = parse(['--dhcp-interface', 'br0', '--dhcp-netns', 'lab-1', '--dhcp-range', '10.99.0.100,10.99.0.199', '--pxe-http-port', '8080']);
    expect(cfg.dhcp).toEqual({ interface: 'br0', netns: 'lab-1', range: { start: '10.99.0.100', end: '10.99.0.199' }, bootUrl: 'http://127.0.0.1:8080/boot.ipxe' });
    expect(() => parse(['--dhcp-interface', 'br0'])).toThrow('--dhcp-interface needs --dhcp-range');
    expect(() => parse(['--dhcp-range', '10.99.0.100,10.99.0.199'])).toThrow('need --dhcp-interface');
    expect(() => parse(['--dhcp-interface', 'br0', '--dhcp-range', '10.99.0.100-10.99.0.199'])).toThrow('is not a DHCP range: write <first IPv4>,<last IPv4>');
  });

  it('the plane takes no lab options: npm start\'s launcher removes them, in both spellings', () => {
    expect(withoutLabOptions(['--no-lab', '--state-dir', 's', '--lab-inventory', 'x.yaml', '--lab-base-port=7000', '--tftp-port', '69', '--lab-inventory=y'])).toEqual(['--state-dir', 's', '--tftp-port', '69']);
    expect(() => planeCommand().exitOverride().configureOutput({ writeErr: () => undefined }).parse(['--lab-inventory', 'x'], { from: 'user' })).toThrow("unknown option '--lab-inventory'");
  });
});
