import fc from 'fast-check';
import type { HostObservation, HostState, HostStatus } from '../../api/host';
import { afterRegistration, checksumPlan, cleaningPlan, decideStable, errorTypeFor, holdReason, isNewerObservation, retryDelayMs } from '../../workflows/host/decide';

const obs = (spec: Partial<HostObservation['spec']> = {}, extra: Partial<HostObservation> = {}): HostObservation => ({
  generation: 1,
  resourceVersion: '10',
  spec: { online: false, bmc: { address: 'ipmi://127.0.0.1:623', credentialsName: 's' }, automatedCleaningMode: 'metadata', ...spec },
  paused: false,
  detached: false,
  preciousData: false,
  deleting: false,
  ...extra,
});
const status = (state: HostState, extra: Partial<HostStatus> = {}): HostStatus => ({
  provisioning: { state },
  operationalStatus: 'OK',
  errorCount: 0,
  poweredOn: false,
  lastUpdated: '2026-01-01T00:00:00Z',
  ...extra,
});
const img = { url: 'http://x/os.img', checksum: 'a'.repeat(64) };

describe('decideStable', () => {
  it.each<[string, HostState, HostObservation, HostStatus, ReturnType<typeof decideStable>['kind'], string | undefined]>([
    ['an available host with an image set is provisioned', 'available', obs({ image: img }), status('available'), 'transition', 'provisioning'],
    ['an available host marked externally provisioned becomes so', 'available', obs({ externallyProvisioned: true }), status('available'), 'transition', 'externally provisioned'],
    ['an available host that should be online is powered on', 'available', obs({ online: true }), status('available'), 'power', undefined],
    ['an available host whose power matches waits', 'available', obs(), status('available'), 'wait', undefined],
    ['a provisioned host whose image is removed is deprovisioned', 'provisioned', obs(), status('provisioned', { provisioning: { state: 'provisioned', image: img } }), 'transition', 'deprovisioning'],
    ['a provisioned host given another image is deprovisioned first', 'provisioned', obs({ image: { url: 'http://x/new.img' } }), status('provisioned', { provisioning: { state: 'provisioned', image: img } }), 'transition', 'deprovisioning'],
    ['a provisioned host that is deleted is erased before release', 'provisioned', obs({ image: img }, { deleting: true }), status('provisioned'), 'transition', 'deprovisioning'],
    ['an available host that is deleted is powered off first', 'available', obs({}, { deleting: true }), status('available'), 'transition', 'powering off before delete'],
    ['a host in maintenance ignores a new image', 'maintenance', obs({ image: img }), status('maintenance'), 'wait', undefined],
    ['a host in maintenance still honours online', 'maintenance', obs({ online: true }), status('maintenance'), 'power', undefined],
    ['an externally provisioned host released without hardware data is inspected', 'externally provisioned', obs(), status('externally provisioned'), 'transition', 'inspecting'],
  ])('%s', (_name, state, o, s, kind, next) => {
    const d = decideStable(state, o, s);
    expect(d.kind).toBe(kind);
    if (d.kind === 'transition') expect(d.next).toBe(next);
    expect(d.reason.length).toBeGreaterThan(5);
  });
});

describe('other decisions', () => {
  it('skips inspection when hardware is known or the host is externally provisioned', () => {
    expect(afterRegistration(obs(), status('registering')).next).toBe('inspecting');
    expect(afterRegistration(obs(), status('registering', { hardware: { cpu: { arch: 'x', model: 'm', count: 1 }, memoryMiB: 1, disks: [], nics: [], system: {} } })).next).toBe('available');
    expect(afterRegistration(obs({ externallyProvisioned: true }), status('registering')).next).toBe('externally provisioned');
  });

  it.each<[HostState, 'power' | 'operation', string]>([
    ['registering', 'operation', 'registration error'],
    ['inspecting', 'operation', 'inspection error'],
    ['provisioning', 'operation', 'provisioning error'],
    ['deprovisioning', 'operation', 'deprovisioning error'],
    ['available', 'power', 'power management error'],
    ['provisioned', 'operation', 'provisioned registration error'],
  ])('a failure in %s (%s step) is a %s', (state, step, type) => {
    expect(errorTypeFor(state, step)).toBe(type);
  });

  it('backs off exponentially from 10 s and never waits more than 10 minutes', () => {
    expect([1, 2, 3, 7, 8, 50].map(retryDelayMs)).toEqual([10_000, 20_000, 40_000, 600_000, 600_000, 600_000]);
    fc.assert(fc.property(fc.integer({ min: 1, max: 1000 }), (n) => retryDelayMs(n) <= retryDelayMs(n + 1) && retryDelayMs(n) <= 600_000));
  });

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

  it('holds paused and detached hosts, but lets a detached host be deleted', () => {
    expect(holdReason(obs({}, { paused: true }))).toContain('paused');
    expect(holdReason(obs({}, { detached: true }))).toContain('detached');
    expect(holdReason(obs({}, { detached: true, deleting: true }))).toBeUndefined();
    expect(holdReason(obs())).toBeUndefined();
  });

  it('orders observations by resourceVersion', () => {
    expect(isNewerObservation(obs({}, { resourceVersion: '10' }), obs({}, { resourceVersion: '9' }))).toBe(false);
    expect(isNewerObservation(obs({}, { resourceVersion: '10' }), obs({}, { resourceVersion: '11' }))).toBe(true);
    expect(isNewerObservation(undefined, obs())).toBe(true);
  });
});
