import { createBmcActivities } from '../../activities/bmc/activities';
import { parseBmcAddress } from '../../activities/bmc/address';
import { type ConnectBmcOptions } from '../../activities/bmc/driver';
import { BmcFailures } from '../../activities/bmc/errors';
import { FixtureBmc } from '../../activities/bmc/fixture';
import { staticBmcCredentialsReader } from '../../activities/k8s/bmc-credentials';
import { FAILURE } from '../../api/errors';
import { silentLog } from '../helpers/bmc-lab';

const input = { host: { namespace: 'metal3', name: 'server-01' }, bmc: { address: 'redfish://10.0.0.5/redfish/v1/Systems/1', credentialsName: 'server-01-bmc' } };
const credentials = staticBmcCredentialsReader({ 'metal3/server-01-bmc': { username: 'admin', password: 's3cret-pw' } });

function setup(init: ConstructorParameters<typeof FixtureBmc>[2] = {}) {
  const endpoint = parseBmcAddress(input.bmc.address);
  const fixture = new FixtureBmc(endpoint, new BmcFailures(endpoint, { namespace: 'metal3', name: 'server-01-bmc' }), init);
  const seen: ConnectBmcOptions[] = [];
  const acts = createBmcActivities({
    credentials,
    log: silentLog,
    pollIntervalMs: 1,
    verifyTimeoutMs: 200,
    connect: (o) => {
      seen.push(o);
      return fixture;
    },
  });
  return { fixture, acts, seen };
}

describe('BMC activities on the fixture driver', () => {
  it('powers on, and returns only once a read-back shows the server on', async () => {
    const { fixture, acts } = setup({ power: 'off', powerLagReads: 3 });
    const r = await acts.bmcSetPower({ ...input, state: 'on' });
    expect(r).toMatchObject({ poweredOn: true, changed: true });
    const methods = fixture.state.calls.map((c) => c.method);
    expect(methods.filter((m) => m === 'setPowerState')).toHaveLength(1);
    expect(methods.filter((m) => m === 'getPowerState').length).toBeGreaterThanOrEqual(5);
    expect(methods[methods.length - 1]).toBe('close');
  });

  it('sends nothing when the server is already in the requested state (safe to retry)', async () => {
    const { fixture, acts } = setup({ power: 'on' });
    expect(await acts.bmcSetPower({ ...input, state: 'on' })).toEqual({ poweredOn: true, changed: false, method: 'none', verifiedAfterMs: 0 });
    expect(fixture.state.calls.map((c) => c.method)).toEqual(['getPowerState', 'close']);
  });

  it('fails with BmcActionNotApplied when the BMC accepts the action but the state never changes', async () => {
    const { fixture, acts } = setup({ power: 'on', powerStuck: true });
    await expect(acts.bmcSetPower({ ...input, state: 'off' })).rejects.toMatchObject({ type: FAILURE.BmcActionNotApplied, nonRetryable: false });
    expect(fixture.state.closed).toBe(1);
  });

  it('with soft, asks the OS to shut down and does not force it off when it shuts down in time', async () => {
    const { fixture, acts } = setup({ power: 'on', powerLagReads: 2 });
    expect(await acts.bmcSetPower({ ...input, state: 'off', soft: true, softTimeoutSeconds: 5 })).toMatchObject({ poweredOn: false, changed: true, method: 'soft' });
    const methods = fixture.state.calls.map((c) => c.method);
    expect(methods).toContain('softPowerOff');
    expect(methods).not.toContain('setPowerState');
  });

  it('with soft, forces the server off when the OS ignores the soft off within the timeout, and says why', async () => {
    const { fixture } = setup({ power: 'on', ignoresSoftOff: true });
    const fast = createBmcActivities({ credentials, log: silentLog, pollIntervalMs: 5, connect: () => fixture });
    const started = Date.now();
    const r = await fast.bmcSetPower({ ...input, state: 'off', soft: true, softTimeoutSeconds: 0.2 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    expect(r).toEqual({ poweredOn: false, changed: true, method: 'hard', verifiedAfterMs: expect.any(Number), softOffFallback: 'the server did not shut down within 0.2 s of a soft power off' });
    const methods = fixture.state.calls.map((c) => c.method);
    expect(methods.indexOf('softPowerOff')).toBeLessThan(methods.indexOf('setPowerState'));
    expect(fixture.state.power).toBe('off');
  });

  it('with soft, goes straight to the hard off on a BMC without a soft action', async () => {
    const { fixture, acts } = setup({ power: 'on' });
    fixture.failNext('softPowerOff', (f) => f.unsupported('ResetType GracefulShutdown (allowed: On, ForceOff)'));
    const r = await acts.bmcSetPower({ ...input, state: 'off', soft: true });
    expect(r).toMatchObject({ method: 'hard', poweredOn: false });
    expect(r.softOffFallback).toContain('the BMC has no soft power off');
  });

  it('without soft, powers off hard (no soft action sent)', async () => {
    const { fixture, acts } = setup({ power: 'on' });
    expect(await acts.bmcSetPower({ ...input, state: 'off' })).toMatchObject({ method: 'hard', poweredOn: false });
    expect(fixture.state.calls.map((c) => c.method)).not.toContain('softPowerOff');
  });

  it.each([0, -1, 601, Number.NaN])('refuses softTimeoutSeconds %s with a message that gives the bounds', async (seconds) => {
    const { acts } = setup({ power: 'on' });
    await expect(acts.bmcSetPower({ ...input, state: 'off', soft: true, softTimeoutSeconds: seconds })).rejects.toMatchObject({
      nonRetryable: true,
      message: expect.stringContaining('softTimeoutSeconds must be more than 0 and at most 600'),
    });
  });

  it('registration reads power state and identity only, never the inventory walk', async () => {
    const { fixture, acts } = setup({ power: 'on', inventory: { manufacturer: 'Contoso', model: '3500', serialNumber: 'S-1', nics: [{ mac: '52:54:00:00:00:09' }], disks: [] } });
    expect(await acts.bmcCheckAccess(input)).toEqual({ poweredOn: true, manufacturer: 'Contoso', model: '3500', serialNumber: 'S-1' });
    expect(fixture.state.calls.map((c) => c.method)).toEqual(['getPowerState', 'getIdentity', 'close']);
  });

  it('sets the next boot device and verifies it by reading back', async () => {
    const { fixture, acts } = setup();
    expect(await acts.bmcSetNextBoot({ ...input, target: 'pxe', persistent: false })).toEqual({ target: 'pxe', persistent: false, verified: true });
    expect(fixture.state.nextBoot).toEqual({ target: 'pxe', persistent: false });
  });

  it('fails when the boot device reads back different from what was set', async () => {
    const { fixture, acts } = setup();
    fixture.setNextBoot = async () => undefined; // accepted, ignored
    await expect(acts.bmcSetNextBoot({ ...input, target: 'disk', persistent: true })).rejects.toMatchObject({ type: FAILURE.BmcActionNotApplied });
  });

  it('passes the Secret reference (never the password) to the driver factory, and closes the driver after a failure', async () => {
    const { fixture, acts, seen } = setup();
    fixture.failNext('getPowerState', (f) => f.credentialsRejected('HTTP 401'));
    const err = await acts.bmcCheckAccess(input).catch((e: Error) => e);
    expect(err).toMatchObject({ type: FAILURE.BmcCredentialsRejected, nonRetryable: true });
    expect((err as Error).message).toBe('BMC 10.0.0.5:443 rejected credentials from Secret metal3/server-01-bmc (HTTP 401); fix the username/password in that Secret');
    expect((err as Error).message).not.toContain('s3cret-pw');
    expect(seen[0]?.secretRef).toEqual({ namespace: 'metal3', name: 'server-01-bmc' });
    expect(fixture.state.closed).toBe(1);
  });

  it('reports a missing Secret before touching the BMC', async () => {
    const { fixture, acts } = setup();
    await expect(acts.bmcCheckAccess({ ...input, bmc: { ...input.bmc, credentialsName: 'nope' } })).rejects.toMatchObject({ type: FAILURE.BmcCredentialsMissing });
    expect(fixture.state.calls).toEqual([]);
  });

  it('refuses an unknown address scheme without reading the Secret', async () => {
    const { acts } = setup();
    await expect(acts.bmcGetInventory({ ...input, bmc: { ...input.bmc, address: 'libvirt://x' } })).rejects.toMatchObject({ type: FAILURE.BmcAddressInvalid, nonRetryable: true });
  });
});
