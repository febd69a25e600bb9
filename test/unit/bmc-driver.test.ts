import { parseBmcAddress } from '../../activities/bmc/address';
import { bmcLimiter, connectBmc, DEFAULT_PER_BMC_CONCURRENCY, setPerBmcConcurrency } from '../../activities/bmc/driver';
import { IpmiDriver } from '../../activities/bmc/ipmi';
import { RedfishDriver } from '../../activities/bmc/redfish';

const tick = () => new Promise((r) => setTimeout(r, 5));

/** Runs `n` requests through the limiter and returns the most that ran at once. */
async function peakConcurrency(limit: ReturnType<typeof bmcLimiter>, n: number): Promise<number> {
  let running = 0;
  let peak = 0;
  await Promise.all(
    Array.from({ length: n }, () =>
      limit(async () => {
        running += 1;
        peak = Math.max(peak, running);
        await tick();
        running -= 1;
      }),
    ),
  );
  return peak;
}

describe('per-BMC request limit', () => {
  afterEach(() => setPerBmcConcurrency(DEFAULT_PER_BMC_CONCURRENCY));

  it(`lets at most ${DEFAULT_PER_BMC_CONCURRENCY} requests run at once against one BMC, shared by every driver of it`, async () => {
    const a = bmcLimiter(parseBmcAddress('redfish://10.0.0.5/redfish/v1/Systems/1'));
    const b = bmcLimiter(parseBmcAddress('redfish://10.0.0.5/redfish/v1/Systems/2'));
    expect(a).toBe(b); // same host:port, same limit: the BMC is one web server
    expect(await peakConcurrency(a, 20)).toBe(DEFAULT_PER_BMC_CONCURRENCY);
  });

  it('does not make different BMCs wait for each other', async () => {
    const a = bmcLimiter(parseBmcAddress('ipmi://10.0.0.6'));
    const b = bmcLimiter(parseBmcAddress('ipmi://10.0.0.7'));
    const both = (fnA: () => Promise<number>, fnB: () => Promise<number>) => Promise.all([fnA(), fnB()]);
    expect(await both(() => peakConcurrency(a, 8), () => peakConcurrency(b, 8))).toEqual([DEFAULT_PER_BMC_CONCURRENCY, DEFAULT_PER_BMC_CONCURRENCY]);
  });

  it('can be lowered for fragile BMCs', async () => {
    setPerBmcConcurrency(1);
    expect(await peakConcurrency(bmcLimiter(parseBmcAddress('10.0.0.8')), 5)).toBe(1);
    expect(() => setPerBmcConcurrency(0)).toThrow(/positive integer/);
  });
});

describe('connectBmc', () => {
  const base = { credentials: { username: 'u', password: 'p' }, secretRef: { namespace: 'ns', name: 's' } };
  it.each([
    ['redfish+http://127.0.0.1:8000/redfish/v1/Systems/1', RedfishDriver],
    ['idrac-redfish://10.0.0.5', RedfishDriver],
    ['ipmi://10.0.0.6', IpmiDriver],
    ['10.0.0.6', IpmiDriver],
  ])('picks the driver for %s', async (address, cls) => {
    const d = connectBmc({ ...base, endpoint: parseBmcAddress(address) });
    expect(d).toBeInstanceOf(cls);
    await d.close();
  });
});
