import fc from 'fast-check';
import { HOST_STATES, type HostState } from '../../api/host';
import {
  afterStep, checksumPlan, cleaningPlan, decideHost, errorEventReason, errorTypeFor, holdReason, identityProblem, isNewerObservation,
  retryDelayMs, specChanged, specProblem, startingState, type HostFacts, type HostStep,
} from '../../workflows/host/decide';
import { CONDITIONS, IMG, NOW, obs, status, type Condition } from './host-decide-matrix';

/** "kind" or "kind detail" (the next state of a transition, the step of a run or refusal). */
function summary(d: ReturnType<typeof decideHost>): { what: string; why: string } {
  const detail = d.kind === 'transition' ? ` ${d.next}` : d.kind === 'run' || d.kind === 'refuse' ? ` ${d.step}` : '';
  return { what: `${d.kind}${detail}`, why: d.kind === 'refuse' ? d.message : d.reason };
}

describe('decideHost: every state x every condition, decision and reason pinned', () => {
  const table: Array<[HostState, Condition, string, string]> = [
    ['unmanaged', 'resting', 'transition registering', 'spec.bmc.address set'],
    ['unmanaged', 'deleting', 'transition deleting', 'deleted while unmanaged: there is no BMC to act through'],
    ['unmanaged', 'detached', 'hold', 'detached annotation set: Ironflow takes no action'],
    ['unmanaged', 'paused', 'hold', 'paused annotation set: Ironflow takes no action'],
    ['unmanaged', 'credentials gone', 'wait', 'registration error: retrying in 10 s, on a spec change, or on retryNow'],
    ['unmanaged', 'N failures while deleting', 'transition deleting', 'deleted while unmanaged: there is no BMC to act through'],
    ['unmanaged', 'fresh run with recorded status', 'transition registering', 'spec.bmc.address set'],
    ['registering', 'resting', 'run register', 'registering: check the BMC credentials, read power, claim the boot MAC'],
    ['registering', 'deleting', 'transition deleting', 'deleted before registration succeeded: the hardware was never touched'],
    ['registering', 'detached', 'hold', 'detached annotation set: Ironflow takes no action'],
    ['registering', 'paused', 'hold', 'paused annotation set: Ironflow takes no action'],
    ['registering', 'credentials gone', 'wait', 'registration error: retrying in 10 s, on a spec change, or on retryNow'],
    ['registering', 'N failures while deleting', 'transition deleting', 'deleted before registration succeeded: the hardware was never touched'],
    ['registering', 'fresh run with recorded status', 'run register', 'registering: check the BMC credentials, read power, claim the boot MAC'],
    ['inspecting', 'resting', 'run inspect', 'inspecting: boot the agent to inspect the hardware'],
    ['inspecting', 'deleting', 'transition powering off before delete', 'deletion requested'],
    ['inspecting', 'detached', 'hold', 'detached annotation set: Ironflow takes no action'],
    ['inspecting', 'paused', 'hold', 'paused annotation set: Ironflow takes no action'],
    ['inspecting', 'credentials gone', 'wait', 'registration error: retrying in 10 s, on a spec change, or on retryNow'],
    ['inspecting', 'N failures while deleting', 'transition powering off before delete', 'deletion requested'],
    ['inspecting', 'fresh run with recorded status', 'run register', 'adopting the recorded state inspecting: BMC reachable and power read, nothing rebooted or written'],
    ['available', 'resting', 'wait', 'available: nothing to do until the spec changes'],
    ['available', 'deleting', 'transition powering off before delete', 'deletion requested'],
    ['available', 'detached', 'hold', 'detached annotation set: Ironflow takes no action'],
    ['available', 'paused', 'hold', 'paused annotation set: Ironflow takes no action'],
    ['available', 'credentials gone', 'wait', 'registration error: retrying in 10 s, on a spec change, or on retryNow'],
    ['available', 'N failures while deleting', 'transition powering off before delete', 'deletion requested'],
    ['available', 'fresh run with recorded status', 'run register', 'adopting the recorded state available: BMC reachable and power read, nothing rebooted or written'],
    ['provisioning', 'resting', 'run provision', 'provisioning: boot the agent to write and verify the image'],
    ['provisioning', 'deleting', 'transition deprovisioning', 'deleted while provisioning: the partly written disk is erased first'],
    ['provisioning', 'detached', 'hold', 'detached annotation set: Ironflow takes no action'],
    ['provisioning', 'paused', 'hold', 'paused annotation set: Ironflow takes no action'],
    ['provisioning', 'credentials gone', 'wait', 'registration error: retrying in 10 s, on a spec change, or on retryNow'],
    ['provisioning', 'N failures while deleting', 'transition deprovisioning', 'deleted while provisioning: the partly written disk is erased first'],
    ['provisioning', 'fresh run with recorded status', 'run register', 'adopting the recorded state provisioning: BMC reachable and power read, nothing rebooted or written'],
    ['provisioned', 'resting', 'wait', 'provisioned: nothing to do until the spec changes'],
    ['provisioned', 'deleting', 'transition deprovisioning', 'deletion requested on a provisioned host: erase before release'],
    ['provisioned', 'detached', 'hold', 'detached annotation set: Ironflow takes no action'],
    ['provisioned', 'paused', 'hold', 'paused annotation set: Ironflow takes no action'],
    ['provisioned', 'credentials gone', 'wait', 'registration error: retrying in 10 s, on a spec change, or on retryNow'],
    ['provisioned', 'N failures while deleting', 'transition deprovisioning', 'deletion requested on a provisioned host: erase before release'],
    ['provisioned', 'fresh run with recorded status', 'run register', 'adopting the recorded state provisioned: BMC reachable and power read, nothing rebooted or written'],
    ['deprovisioning', 'resting', 'run deprovision', 'deprovisioning: boot the agent to erase the disks'],
    ['deprovisioning', 'deleting', 'run deprovision', 'deprovisioning: boot the agent to erase the disks'],
    ['deprovisioning', 'detached', 'hold', 'detached annotation set: Ironflow takes no action'],
    ['deprovisioning', 'paused', 'hold', 'paused annotation set: Ironflow takes no action'],
    ['deprovisioning', 'credentials gone', 'wait', 'registration error: retrying in 10 s, on a spec change, or on retryNow'],
    ['deprovisioning', 'N failures while deleting', 'release', 'let go after 3 failed attempts while deleting (power management error: BMC 127.0.0.1:623 did not answer): the disks were NOT erased and the server may still be powered on'],
    ['deprovisioning', 'fresh run with recorded status', 'run register', 'adopting the recorded state deprovisioning: BMC reachable and power read, nothing rebooted or written'],
    ['externally provisioned', 'resting', 'wait', 'externally provisioned: nothing to do until the spec changes'],
    ['externally provisioned', 'deleting', 'transition powering off before delete', 'deletion requested'],
    ['externally provisioned', 'detached', 'hold', 'detached annotation set: Ironflow takes no action'],
    ['externally provisioned', 'paused', 'hold', 'paused annotation set: Ironflow takes no action'],
    ['externally provisioned', 'credentials gone', 'wait', 'registration error: retrying in 10 s, on a spec change, or on retryNow'],
    ['externally provisioned', 'N failures while deleting', 'transition powering off before delete', 'deletion requested'],
    ['externally provisioned', 'fresh run with recorded status', 'run register', 'adopting the recorded state externally provisioned: BMC reachable and power read, nothing rebooted or written'],
    ['powering off before delete', 'resting', 'transition registering', 'recorded state powering off before delete but the object is not being deleted: register again'],
    ['powering off before delete', 'deleting', 'run power-off-before-delete', 'powering off before delete: power off, then release the object'],
    ['powering off before delete', 'detached', 'hold', 'detached annotation set: Ironflow takes no action'],
    ['powering off before delete', 'paused', 'hold', 'paused annotation set: Ironflow takes no action'],
    ['powering off before delete', 'credentials gone', 'wait', 'registration error: retrying in 10 s, on a spec change, or on retryNow'],
    ['powering off before delete', 'N failures while deleting', 'release', 'let go after 3 failed attempts while deleting (power management error: BMC 127.0.0.1:623 did not answer): the server was NOT powered off'],
    ['powering off before delete', 'fresh run with recorded status', 'transition registering', 'recorded state powering off before delete but the object is not being deleted: register again'],
    ['deleting', 'resting', 'transition registering', 'recorded state deleting but the object is not being deleted: register again'],
    ['deleting', 'deleting', 'release', 'hardware is safe'],
    ['deleting', 'detached', 'hold', 'detached annotation set: Ironflow takes no action'],
    ['deleting', 'paused', 'hold', 'paused annotation set: Ironflow takes no action'],
    ['deleting', 'credentials gone', 'wait', 'registration error: retrying in 10 s, on a spec change, or on retryNow'],
    ['deleting', 'N failures while deleting', 'release', 'hardware is safe'],
    ['deleting', 'fresh run with recorded status', 'transition registering', 'recorded state deleting but the object is not being deleted: register again'],
    ['maintenance', 'resting', 'wait', 'maintenance: nothing to do until the spec changes'],
    ['maintenance', 'deleting', 'transition powering off before delete', 'deletion requested'],
    ['maintenance', 'detached', 'hold', 'detached annotation set: Ironflow takes no action'],
    ['maintenance', 'paused', 'hold', 'paused annotation set: Ironflow takes no action'],
    ['maintenance', 'credentials gone', 'wait', 'registration error: retrying in 10 s, on a spec change, or on retryNow'],
    ['maintenance', 'N failures while deleting', 'transition powering off before delete', 'deletion requested'],
    ['maintenance', 'fresh run with recorded status', 'run register', 'adopting the recorded state maintenance: BMC reachable and power read, nothing rebooted or written'],
  ];

  it('covers every state under every condition', () => {
    expect(new Set(table.map(([s, c]) => `${s}|${c}`)).size).toBe(HOST_STATES.length * Object.keys(CONDITIONS).length);
  });

  it.each(table)('%s, %s: %s', (state, condition, what, why) => {
    expect(summary(decideHost(CONDITIONS[condition](state)))).toEqual({ what, why });
  });
});

describe('decideHost: what a host does when the spec asks for something', () => {
  const adopted = (state: HostState, o = obs(state), s = status(state)): HostFacts => ({ namespace: 'ns', state, obs: o, status: s, adopted: true, everRegistered: true, retryRequested: false, now: NOW });
  it.each<[string, HostFacts, string, string]>([
    ['an available host given an image is provisioned', adopted('available', obs('available', {}, { image: IMG })), 'transition provisioning', 'spec.image set to http://x/os.img'],
    ['an available host marked externally provisioned becomes so', adopted('available', obs('available', {}, { externallyProvisioned: true })), 'transition externally provisioned', 'spec.externallyProvisioned set'],
    ['an available host that should be online is powered on', adopted('available', obs('available', {}, { online: true })), 'run power-on', 'spec.online is true, host is powered off'],
    ['a provisioned host that should be offline is powered off', adopted('provisioned', obs('provisioned'), status('provisioned', { poweredOn: true })), 'run power-off', 'spec.online is false, host is powered on'],
    ['a provisioned host whose image is removed is deprovisioned', adopted('provisioned', obs('provisioned', {}, { image: undefined })), 'transition deprovisioning', 'spec.image removed'],
    ['a provisioned host given another image is deprovisioned first', adopted('provisioned', obs('provisioned', {}, { image: { url: 'http://x/new.img', checksum: 'b'.repeat(64) } })), 'transition deprovisioning', 'image changed from http://x/os.img to http://x/new.img: deprovision, then provision'],
    ['a host in provisioning whose image is removed goes back through deprovisioning', adopted('provisioning', obs('provisioning', {}, { image: undefined })), 'transition deprovisioning', 'spec.image removed while provisioning: the disk is erased and the host returns to available'],
    ['a host in maintenance ignores a new image', adopted('maintenance', obs('maintenance', {}, { image: IMG })), 'wait', 'maintenance: nothing to do until the spec changes'],
    ['a host in maintenance still honours online', adopted('maintenance', obs('maintenance', {}, { online: true })), 'run power-on', 'spec.online is true, host is powered off'],
    ['an externally provisioned host released without hardware data is inspected', adopted('externally provisioned', obs('externally provisioned', {}, { externallyProvisioned: false })), 'transition inspecting', 'spec.externallyProvisioned cleared; hardware not yet inspected'],
    ['a host without a boot MAC is refused inspection, saying what to set', adopted('inspecting', obs('inspecting', {}, { bootMACAddress: undefined })), 'refuse inspect', 'spec.bootMACAddress is empty: set the MAC of the NIC that PXE-boots to inspect, provision or erase this host'],
    ['a BMC address with credentials in it is refused', { ...adopted('registering', obs('registering', {}, { bmc: { address: 'redfish://REDACTED@10.0.0.1/redfish/v1/Systems/1', credentialsName: 's' } })), adopted: false }, 'refuse register', 'spec.bmc.address contains credentials (user:password@): remove them and put them in the credentials Secret'],
    ['user data from another namespace is refused', adopted('provisioning', obs('provisioning', {}, { userData: { name: 'ud', namespace: 'other' } })), 'refuse provision', 'spec.userData.namespace is other, but a host reads user data only from its own namespace (ns): move the Secret there'],
    ['a provisioned host whose status records no image is not touched on adoption', { ...adopted('provisioned', obs('provisioned'), status('provisioned', { provisioning: { state: 'provisioned' } })), adopted: false }, 'refuse register', 'status says provisioned but records no image, so Ironflow cannot tell what is on the disk and will not touch it: restore status.provisioning.image, or set spec.externallyProvisioned to manage power only'],
    ['a failed step is retried at once after retryNow', { ...adopted('inspecting'), failure: { step: 'inspect', retryAtMs: NOW + 60_000 }, retryRequested: true }, 'run inspect', 'inspecting: boot the agent to inspect the hardware'],
    ['a failed step is retried when its backoff has passed', { ...adopted('inspecting'), failure: { step: 'inspect', retryAtMs: NOW - 1 } }, 'run inspect', 'inspecting: boot the agent to inspect the hardware'],
    ['deletion does not wait out an error backoff', { ...adopted('available', obs('available', { deleting: true })), failure: { step: 'register', retryAtMs: NOW + 600_000 } }, 'transition powering off before delete', 'deletion requested'],
    ['a detached host that is deleted is let go without touching the hardware', adopted('provisioned', obs('provisioned', { detached: true, deleting: true })), 'release', 'deleted while detached: the hardware is left as it is'],
  ])('%s', (_name, facts, what, why) => {
    expect(summary(decideHost(facts))).toEqual({ what, why });
  });

  it('the release of a host let go after failed deletion attempts is a Warning that says what was skipped', () => {
    const d = decideHost(CONDITIONS['N failures while deleting']('deprovisioning'));
    expect(d).toMatchObject({ kind: 'release', event: { type: 'Warning', reason: 'DeleteIncomplete' } });
  });

  it('transitions carry the Metal3 event reason of the state they enter', () => {
    const d = decideHost({ ...CONDITIONS.resting('available'), obs: obs('available', {}, { image: IMG }) });
    expect(d).toMatchObject({ kind: 'transition', event: { type: 'Normal', reason: 'ProvisioningStarted', message: 'available -> provisioning: spec.image set to http://x/os.img' } });
  });
});

describe('afterStep: where a successful step leads', () => {
  const f = (state: HostState, extra = {}, spec = {}) => ({ state, obs: obs(state, extra, spec), status: status(state) });
  it.each<[string, ReturnType<typeof f>, HostStep, string | undefined]>([
    ['registration without hardware goes to inspection', f('registering'), 'register', 'inspecting'],
    ['registration with hardware known skips inspection', { ...f('registering'), status: status('registering', { hardware: { cpu: { arch: 'x', model: 'm', count: 1 }, memoryMiB: 1, disks: [], nics: [], system: {} } }) }, 'register', 'available'],
    ['registration of an externally provisioned host', f('registering', {}, { externallyProvisioned: true }), 'register', 'externally provisioned'],
    ['adoption of a provisioned host stays provisioned', f('provisioned'), 'register', undefined],
    ['adoption of an available host stays available', f('available'), 'register', undefined],
    ['inspection leads to available', f('inspecting'), 'inspect', 'available'],
    ['provisioning leads to provisioned', f('provisioning'), 'provision', 'provisioned'],
    ['deprovisioning leads back to the pool', f('deprovisioning'), 'deprovision', 'available'],
    ['deprovisioning during deletion leads to power off', f('deprovisioning', { deleting: true }), 'deprovision', 'powering off before delete'],
    ['power off before delete leads to deleting', f('powering off before delete', { deleting: true }), 'power-off-before-delete', 'deleting'],
    ['a power change stays in its state', f('provisioned'), 'power-on', undefined],
  ])('%s', (_name, facts, step, next) => {
    const d = afterStep(facts, step, { kind: 'done' });
    expect(d?.kind === 'transition' ? d.next : undefined).toBe(next);
  });

  it('a disk that failed erase sends the host to maintenance, or on to deletion when it is being deleted', () => {
    expect(afterStep(f('deprovisioning'), 'deprovision', { kind: 'disk-failed', message: 'disk sdb failed' })).toMatchObject({ next: 'maintenance', event: { type: 'Warning', reason: 'Maintenance' } });
    expect(afterStep(f('deprovisioning', { deleting: true }), 'deprovision', { kind: 'disk-failed', message: 'disk sdb failed' })).toMatchObject({ next: 'powering off before delete' });
  });
});

describe('adoption, errors and backoff', () => {
  it.each<[string, Parameters<typeof startingState>[0], HostState]>([
    ['a new host starts at registration', undefined, 'registering'],
    ['a provisioned host starts provisioned (adopted, not re-imaged)', status('provisioned'), 'provisioned'],
    ['an available host keeps its state (and its hardware)', status('available'), 'available'],
    ['an interrupted deprovisioning resumes deprovisioning', status('deprovisioning'), 'deprovisioning'],
  ])('%s', (_name, recorded, state) => {
    expect(startingState(recorded).state).toBe(state);
  });

  it('refuses to act when the BMC fronts another machine than the one inspected', () => {
    const s = status('provisioned', { hardware: { cpu: { arch: 'x', model: 'm', count: 1 }, memoryMiB: 1, disks: [], nics: [], system: { serialNumber: 'SN-1' } } });
    expect(identityProblem(s, 'SN-2', 'ipmi://10.0.0.9')).toBe('the BMC at ipmi://10.0.0.9 reports system serial SN-2, but this host was inspected as SN-1: spec.bmc.address may point at another server; fix it (nothing was done to either machine)');
    expect(identityProblem(s, 'SN-1', 'ipmi://10.0.0.9')).toBeUndefined();
    expect(identityProblem(s, undefined, 'ipmi://10.0.0.9')).toBeUndefined();
  });

  it.each<[HostState, HostStep, string]>([
    ['registering', 'register', 'registration error'],
    ['inspecting', 'inspect', 'inspection error'],
    ['inspecting', 'register', 'registration error'],
    ['provisioning', 'provision', 'provisioning error'],
    ['deprovisioning', 'deprovision', 'deprovisioning error'],
    ['available', 'power-on', 'power management error'],
    ['provisioned', 'register', 'provisioned registration error'],
    ['externally provisioned', 'register', 'provisioned registration error'],
    ['powering off before delete', 'power-off-before-delete', 'power management error'],
  ])('a failure in %s (%s step) is a %s', (state, step, type) => {
    expect(errorTypeFor(state, step)).toBe(type);
  });

  it('names error events as BMO does', () => {
    expect(errorEventReason('provisioned registration error')).toBe('ProvisionedRegistrationError');
    expect(errorEventReason('power management error')).toBe('PowerManagementError');
  });

  it('backs off exponentially from 10 s to at most 10 minutes, with +-20 % jitter', () => {
    expect([1, 2, 3, 7, 8, 50].map((n) => retryDelayMs(n, 0.5))).toEqual([10_000, 20_000, 40_000, 600_000, 600_000, 600_000]);
    expect(retryDelayMs(1, 0)).toBe(8_000);
    expect(retryDelayMs(1, 0.999999)).toBe(12_000);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1000 }), fc.double({ min: 0, max: 1, noNaN: true }), (n, j) => {
        const d = retryDelayMs(n, j);
        return d >= 8_000 && d <= 720_000 && retryDelayMs(n, 0.5) <= retryDelayMs(n + 1, 0.5);
      }),
    );
  });

  it('caps the backoff at 30 s while the host is being deleted, so deletion ends in bounded time', () => {
    expect(retryDelayMs(10, 0.5, true)).toBe(30_000);
  });

  it('a spec change counts, a status-only resourceVersion bump does not', () => {
    expect(specChanged(obs('available'), { ...obs('available'), resourceVersion: '11' })).toBe(false);
    expect(specChanged(obs('available'), obs('available', {}, { bootMACAddress: '52:54:00:00:00:02' }))).toBe(true);
    expect(specChanged(obs('available'), obs('available', { deleting: true }))).toBe(true);
  });
});

describe('inputs bounded before they reach the agent', () => {
  const provisioning = (hints: Record<string, unknown>) => obs('provisioning', {}, { rootDeviceHints: hints as never });
  it.each([
    [{ minSizeGigabytes: 10_000_000_000 }, 'spec.rootDeviceHints.minSizeGigabytes must be a whole number from 0 to 1048576 (1 PiB), not 10000000000'],
    [{ minSizeGigabytes: -1 }, 'spec.rootDeviceHints.minSizeGigabytes must be a whole number from 0 to 1048576 (1 PiB), not -1'],
    [{ minSizeGigabytes: 1.5 }, 'spec.rootDeviceHints.minSizeGigabytes must be a whole number from 0 to 1048576 (1 PiB), not 1.5'],
    [{ serialNumber: 'x'.repeat(300) }, 'spec.rootDeviceHints.serialNumber must be at most 256 printable characters'],
    [{ model: 'a\nb' }, 'spec.rootDeviceHints.model must be at most 256 printable characters'],
  ])('refuses %j', (hints, message) => {
    expect(specProblem(provisioning(hints), 'provision', 'ns')).toBe(message);
  });
  it('accepts sane hints', () => {
    expect(specProblem(provisioning({ minSizeGigabytes: 100, serialNumber: 'S1' }), 'provision', 'ns')).toBeUndefined();
  });
});

describe('other decisions', () => {
  it('plans cleaning per mode, and asks for approval on precious data', () => {
    expect(cleaningPlan('disabled', true, false)).toMatchObject({ erase: false });
    expect(cleaningPlan('metadata', false, false)).toMatchObject({ erase: true, mode: 'metadata', needsApproval: false });
    expect(cleaningPlan('secure', true, false)).toMatchObject({ erase: true, mode: 'secure', needsApproval: true });
    expect(cleaningPlan('full', true, true)).toMatchObject({ erase: true, mode: 'full', needsApproval: false });
  });

  it.each([
    [{ url: 'u', checksum: 'a'.repeat(64) }, 'sha256'],
    [{ url: 'u', checksum: 'B'.repeat(128), checksumType: 'auto' as const }, 'sha512'],
    [{ url: 'u', checksum: 'a'.repeat(64), checksumType: 'sha256' as const }, 'sha256'],
  ])('accepts checksum %j as %s', (image, type) => {
    expect(checksumPlan(image)).toMatchObject({ ok: true, checksumType: type });
  });

  it.each([
    [{ url: 'u', checksum: 'a'.repeat(32), checksumType: 'md5' as const }, 'md5 is not accepted'],
    [{ url: 'u', checksum: 'a'.repeat(64), checksumType: 'sha512' as const }, 'not a sha512'],
    [{ url: 'u', checksum: 'http://x/sum.txt' }, 'must be the hex'],
    [{ url: 'u', checksum: 'abc' }, 'expected 64 (sha256) or 128 (sha512)'],
    [{ url: '' }, 'spec.image.url is empty'],
  ])('refuses checksum %j saying "%s"', (image, msg) => {
    const p = checksumPlan(image);
    expect(p.ok).toBe(false);
    if (!p.ok) expect(p.message).toContain(msg);
  });

  it('holds paused and detached hosts, but lets a detached host be deleted; paused stops deletion too', () => {
    expect(holdReason(obs('available', { paused: true }))).toContain('paused');
    expect(holdReason(obs('available', { paused: true, deleting: true }))).toContain('paused');
    expect(holdReason(obs('available', { detached: true }))).toContain('detached');
    expect(holdReason(obs('available', { detached: true, deleting: true }))).toBeUndefined();
    expect(holdReason(obs('available'))).toBeUndefined();
  });

  it('orders observations by resourceVersion', () => {
    expect(isNewerObservation(obs('available', { resourceVersion: '10' }), obs('available', { resourceVersion: '9' }))).toBe(false);
    expect(isNewerObservation(obs('available', { resourceVersion: '10' }), obs('available', { resourceVersion: '11' }))).toBe(true);
    expect(isNewerObservation(undefined, obs('available'))).toBe(true);
  });
});
