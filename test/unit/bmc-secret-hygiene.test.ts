import { Writable } from 'node:stream';
import { MockActivityEnvironment } from '@temporalio/testing';
import pino from 'pino';
import { createBmcActivities } from '../../activities/bmc/activities';
import { parseBmcAddress } from '../../activities/bmc/address';
import { BmcFailures } from '../../activities/bmc/errors';
import { FixtureBmc } from '../../activities/bmc/fixture';
import { credentialScrubber, SCRUBBED, secretSpellings } from '../../activities/bmc/scrub';
import { credentialsFromSecretData, staticBmcCredentialsReader } from '../../activities/k8s/bmc-credentials';
import type { BmcCredentials } from '../../api/bmc';
import { FAILURE } from '../../api/errors';

const NUL_PASSWORD = 'nul\0pass-Qx7\nend';
const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

/** A pino logger writing into an array, to assert on what the activities log. */
function capturingLog(): { log: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}

/** Every spelling of every secret, for "appears nowhere" assertions. */
function leaks(text: string, c: BmcCredentials): string[] {
  return [...secretSpellings(c.password), ...secretSpellings(`${c.username}:${c.password}`), b64(`${c.username}:${c.password}`)]
    .filter((s) => s.length >= 4)
    .filter((s) => text.includes(s));
}

describe('credentialScrubber', () => {
  const c = { username: 'opsadmin', password: NUL_PASSWORD };
  const scrub = credentialScrubber(c);

  it.each([
    ['the raw value', `ipmitool said: ${NUL_PASSWORD}`],
    ['the piece before a NUL (where a C string ends)', 'Error: password nul'],
    ['the piece after a NUL', 'unexpected token pass-Qx7'],
    ['JSON-escaped (a Redfish body, a pino line)', JSON.stringify({ Password: NUL_PASSWORD })],
    ['as util.inspect quotes it (Node argument errors)', "must be a string without null bytes. Received 'nul\\x00pass-Qx7\\nend'"],
    ['percent-encoded (a URL)', `GET /x?pw=${encodeURIComponent(NUL_PASSWORD)}`],
    ['inside an HTTP Basic header', `Authorization: Basic ${b64(`opsadmin:${NUL_PASSWORD}`)}`],
    ['the username', 'user opsadmin has no access'],
  ])('removes %s', (_what, text) => {
    const out = scrub(text);
    expect(out).toContain(SCRUBBED);
    expect(leaks(out, c)).toEqual([]);
    expect(out).not.toContain('opsadmin');
  });

  it('leaves text without credentials alone, and removes a short username only where it stands alone', () => {
    expect(scrub('BMC 10.0.0.5:443 answered HTTP 500')).toBe('BMC 10.0.0.5:443 answered HTTP 500');
    const short = credentialScrubber({ username: 'ro', password: 'long-enough-pw' });
    expect(short('error: user ro denied')).toBe(`error: user ${SCRUBBED} denied`);
  });
});

describe('BMC activities never let a credential out', () => {
  const input = { host: { namespace: 'metal3', name: 'server-01' }, bmc: { address: 'redfish://10.0.0.5/redfish/v1/Systems/1', credentialsName: 'server-01-bmc' } };
  const creds = { username: 'opsadmin', password: NUL_PASSWORD };
  const credentials = staticBmcCredentialsReader({ 'metal3/server-01-bmc': creds });

  function withFixture(fail: (fixture: FixtureBmc) => void) {
    const endpoint = parseBmcAddress(input.bmc.address);
    // The fixture's own failures do not scrub: what comes out clean was cleaned by the activity frame.
    const fixture = new FixtureBmc(endpoint, new BmcFailures(endpoint, { namespace: 'metal3', name: 'server-01-bmc' }));
    fail(fixture);
    const { log, lines } = capturingLog();
    return { acts: createBmcActivities({ credentials, log, connect: () => fixture }), lines };
  }

  it.each([
    ['a library error that quotes the password', (f: FixtureBmc) => f.failNext('getPowerState', () => new Error(`HTTP error! body: {"Password":${JSON.stringify(NUL_PASSWORD)}}`)), FAILURE.BmcBusy, false],
    ['a BMC message that echoes the Basic header', (f: FixtureBmc) => f.failNext('getPowerState', (x) => x.unsupported(`GET / (HTTP 400: bad header Basic ${b64(`opsadmin:${NUL_PASSWORD}`)})`)), FAILURE.BmcUnsupported, true],
    ['a Node error that inspects the value', (f: FixtureBmc) => f.failNext('getPowerState', () => Object.assign(new TypeError(`The property 'options.env['IPMI_PASSWORD']' must be a string without null bytes. Received 'nul\\x00pass-Qx7\\nend'`), { code: 'ERR_INVALID_ARG_VALUE' })), FAILURE.BmcBusy, false],
  ] as const)('%s: the failure (message and stack) and the log lines are clean', async (_what, fail, type, nonRetryable) => {
    const { acts, lines } = withFixture(fail);
    const err = (await acts.bmcCheckAccess(input).catch((e: Error) => e)) as Error & { type?: string; nonRetryable?: boolean; cause?: unknown };
    expect(err).toMatchObject({ type, nonRetryable });
    expect(err.message).toContain(SCRUBBED);
    expect(err.cause).toBeUndefined();
    expect(leaks(`${err.message}\n${err.stack}`, creds)).toEqual([]);
    expect(lines.join('')).toContain('bmcCheckAccess failed');
    expect(leaks(lines.join(''), creds)).toEqual([]);
  });

  it('scrubs results read from a BMC that puts the password into its identity', async () => {
    const { acts } = withFixture((f) => {
      f.state.inventory = { manufacturer: `evil ${NUL_PASSWORD}`, model: 'M', nics: [], disks: [] };
    });
    const r = await acts.bmcCheckAccess(input);
    expect(r.manufacturer).toContain(SCRUBBED);
    expect(leaks(JSON.stringify(r), creds)).toEqual([]);
  });

  it('logs the BMC address redacted (an address with credentials is refused before the Secret is read)', async () => {
    const { acts, lines } = withFixture(() => undefined);
    const err = (await acts.bmcCheckAccess({ ...input, bmc: { ...input.bmc, address: 'redfish://root:addr-secret-9@10.0.0.5' } }).catch((e: Error) => e)) as Error;
    expect(err).toMatchObject({ type: FAILURE.BmcAddressInvalid, nonRetryable: true });
    expect(err.message).not.toContain('addr-secret-9');
    expect(lines.join('')).not.toContain('addr-secret-9');
  });
});

describe('heartbeats', () => {
  it('heartbeat on a timer while a slow BMC call runs, with the phase', async () => {
    const endpoint = parseBmcAddress('ipmi://10.0.0.6');
    const fixture = new FixtureBmc(endpoint, new BmcFailures(endpoint, { namespace: 'ns', name: 's' }));
    const slow = fixture.getIdentity.bind(fixture);
    fixture.getIdentity = async () => {
      await new Promise((r) => setTimeout(r, 250));
      return slow();
    };
    const acts = createBmcActivities({ credentials: staticBmcCredentialsReader({ 'ns/s': { username: 'u', password: 'password' } }), log: pino({ level: 'silent' }), heartbeatIntervalMs: 20, connect: () => fixture });
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    await env.run(acts.bmcCheckAccess, { host: { namespace: 'ns', name: 'h' }, bmc: { address: 'ipmi://10.0.0.6', credentialsName: 's' } });
    expect(beats.length).toBeGreaterThanOrEqual(5);
    expect(beats).toContainEqual(expect.objectContaining({ activity: 'bmcCheckAccess', phase: 'identity' }));
  });
});

describe('credentialsFromSecretData', () => {
  const data = (username: string | Buffer, password: string | Buffer) => ({ username: b64(username), password: b64(password) });

  it.each([
    ['a NUL byte', data('admin', NUL_PASSWORD.replace('\n', '')), 'password', 'contains a control character (such as a NUL byte)'],
    ['a trailing newline', data('admin', 'trailing-nl-pw\n'), 'password', 'contains a line break (a trailing newline from `echo`?'],
    ['bytes that are not UTF-8', data('admin', Buffer.from([0x70, 0xff, 0xfe, 0x77, 0x64, 0x31, 0x32, 0x33])), 'password', 'is not valid UTF-8'],
    ['a control character in the username', data('ad\x07min-user', 'fine-password'), 'username', 'contains a control character'],
  ])('refuses a Secret with %s, naming the key and never the value', (_what, d, key, why) => {
    let err: unknown;
    try {
      credentialsFromSecretData('metal3', 'bmc', d);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ type: FAILURE.BmcCredentialsMissing, nonRetryable: true });
    const message = (err as Error).message;
    expect(message).toContain(`BMC credentials Secret metal3/bmc has a "${key}" that ${why}`);
    for (const v of [Buffer.from(d.password, 'base64').toString('latin1'), 'trailing-nl-pw', 'nul', 'pass-Qx7', 'min-user', 'wd123']) expect(message).not.toContain(v);
  });

  it('accepts UTF-8 credentials as they are', () => {
    expect(credentialsFromSecretData('ns', 's', data('admin', 'pässwörd-ünïcode'))).toEqual({ username: 'admin', password: 'pässwörd-ünïcode' });
  });
});
