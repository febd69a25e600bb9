import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createBmcActivities } from '../../activities/bmc/activities';
import { parseBmcAddress } from '../../activities/bmc/address';
import { connectBmc } from '../../activities/bmc/driver';
import { BmcFailures } from '../../activities/bmc/errors';
import { IpmiDriver } from '../../activities/bmc/ipmi';
import { staticBmcCredentialsReader } from '../../activities/k8s/bmc-credentials';
import { FAILURE } from '../../api/errors';
import { startIpmiSim, type IpmiSim } from '../../lab/bmc/ipmi-sim';
import { labWorkDir, Latencies, silentLog } from '../helpers/bmc-lab';
import { registerTestSecret } from '../helpers/secrets';

const NS = 'metal3';
const USER = 'admin';
const PASSWORD = 'ipmi-pass-42';
const credentials = staticBmcCredentialsReader({
  [`${NS}/good-bmc`]: { username: USER, password: PASSWORD },
  [`${NS}/bad-bmc`]: { username: USER, password: 'not-the-pass' },
});
const latencies = new Latencies();

beforeAll(() => registerTestSecret(PASSWORD));

describe('IPMI driver and BMC activities against ipmi_sim', () => {
  let sim: IpmiSim;
  let dir: string;

  beforeAll(async () => {
    dir = labWorkDir('bmc-ipmi');
    sim = await startIpmiSim({
      name: 'server-ipmi-01',
      workDir: dir,
      username: USER,
      password: PASSWORD,
      fru: { manufacturer: 'Supermicro', product: 'SYS-1029P-WTR', serial: 'S123456' },
    });
  }, 30_000);
  afterAll(async () => {
    await sim?.stop();
    rmSync(dir, { recursive: true, force: true });
    console.log(`IPMI latencies on this machine:\n${latencies.summary()}`);
  });

  const input = (credentialsName = 'good-bmc') => ({ host: { namespace: NS, name: 'server-ipmi-01' }, bmc: { address: sim.address, credentialsName } });
  const acts = () => createBmcActivities({ credentials, log: silentLog, pollIntervalMs: 100, verifyTimeoutMs: 5_000 });

  it('powers the server on and off, verified by read-back, and the chassis script sees each change', async () => {
    expect(await latencies.time('bmcSetPower (act + verify)', () => acts().bmcSetPower({ ...input(), state: 'on' }))).toMatchObject({ poweredOn: true, changed: true });
    expect(sim.state().power).toBe('on');
    expect(await acts().bmcSetPower({ ...input(), state: 'on' })).toMatchObject({ changed: false });
    expect(await acts().bmcSetPower({ ...input(), state: 'off' })).toMatchObject({ poweredOn: false, changed: true });
    expect(sim.state().power).toBe('off');
    const events = readFileSync(sim.eventsFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { server: string; power: number; event: string });
    expect(events.filter((e) => e.event === 'power').map((e) => e.power)).toEqual([1, 0]);
    expect(events.every((e) => e.server === 'server-ipmi-01')).toBe(true);
  });

  it('sets the next boot device to PXE and back to disk, read back from boot parameter 5', async () => {
    expect(await acts().bmcSetNextBoot({ ...input(), target: 'pxe', persistent: false })).toEqual({ target: 'pxe', persistent: false, verified: true });
    expect(sim.state().boot).toBe('pxe');
    expect(await acts().bmcSetNextBoot({ ...input(), target: 'disk', persistent: true })).toMatchObject({ target: 'disk', verified: true });
    // ipmi_sim calls a forced hard-disk boot "default".
    expect(sim.state().boot).toBe('default');
    const d = connectBmc({ endpoint: parseBmcAddress(sim.address), credentials: { username: USER, password: PASSWORD }, secretRef: { namespace: NS, name: 'good-bmc' } });
    for (let i = 0; i < 5; i++) await latencies.time('ipmitool chassis bootparam get 5', () => d.getNextBoot());
    for (let i = 0; i < 5; i++) await latencies.time('ipmitool power status', () => d.getPowerState());
    expect((await d.getNextBoot()).target).toBe('disk');
  });

  it('reads what IPMI offers as inventory (FRU 0: make, model, serial)', async () => {
    const inv = await latencies.time('bmcGetInventory (mc info + fru print)', () => acts().bmcGetInventory(input()));
    expect(inv).toEqual({ manufacturer: 'Supermicro', model: 'SYS-1029P-WTR', serialNumber: 'S123456', nics: [], disks: [] });
    expect(await acts().bmcCheckAccess(input())).toEqual({ poweredOn: false, manufacturer: 'Supermicro', model: 'SYS-1029P-WTR', serialNumber: 'S123456' });
  });

  it('rejects a wrong password as BmcCredentialsRejected naming the address and the Secret', async () => {
    const err = (await acts().bmcCheckAccess(input('bad-bmc')).catch((e: Error) => e)) as Error & { type?: string; nonRetryable?: boolean };
    expect(err).toMatchObject({ type: FAILURE.BmcCredentialsRejected, nonRetryable: true });
    expect(err.message).toContain(`BMC 127.0.0.1:${sim.port} rejected credentials from Secret ${NS}/bad-bmc`);
    expect(err.message).not.toContain('not-the-pass');
  });

  it('calls a BMC nobody answers for unreachable (retryable), not a credentials problem', async () => {
    const d = connectBmc({ endpoint: parseBmcAddress('ipmi://127.0.0.1:9'), credentials: { username: USER, password: PASSWORD }, secretRef: { namespace: NS, name: 'good-bmc' } });
    await expect(d.getPowerState()).rejects.toMatchObject({ type: FAILURE.BmcUnreachable, nonRetryable: false });
    // With a short request timeout, ipmitool is killed and the failure says how long it waited.
    const quick = connectBmc({ endpoint: parseBmcAddress('ipmi://127.0.0.1:9'), credentials: { username: USER, password: PASSWORD }, secretRef: { namespace: NS, name: 'good-bmc' }, timeoutMs: 500 });
    const started = Date.now();
    const err = (await quick.getPowerState().catch((e: Error) => e)) as Error;
    expect(err).toMatchObject({ type: FAILURE.BmcUnreachable, nonRetryable: false });
    expect(err.message).toContain('no answer within 500 ms');
    expect(Date.now() - started).toBeLessThan(2_000);
  }, 20_000);

  it('never puts the password on the ipmitool command line', async () => {
    // Wrap ipmitool: record its argv, then run the real one.
    const argvFile = `${dir}/argv.txt`;
    const wrapper = `${dir}/ipmitool-wrapper`;
    writeFileSync(wrapper, `#!/bin/sh\necho "$@" >> ${argvFile}\nenv | grep -c '^IPMI_PASSWORD=' >> ${argvFile}\nexec ipmitool "$@"\n`, { mode: 0o755 });
    const endpoint = parseBmcAddress(sim.address);
    const d = new IpmiDriver(endpoint, new BmcFailures(endpoint, { namespace: NS, name: 'good-bmc' }), {
      credentials: { username: USER, password: PASSWORD },
      timeoutMs: 10_000,
      limit: (fn) => fn(),
      ipmitool: wrapper,
    });
    await d.getPowerState();
    const recorded = readFileSync(argvFile, 'utf8');
    expect(recorded).toContain('-E');
    expect(recorded).not.toContain(PASSWORD);
    expect(recorded.trim().split('\n')[1]).toBe('1'); // IPMI_PASSWORD was in the environment
  });
});
