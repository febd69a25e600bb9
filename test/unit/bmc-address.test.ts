import { parseBmcAddress } from '../../activities/bmc/address';
import { bmcAddressHasCredentials, redactBmcAddress } from '../../api/bmc-address-redaction';
import { FAILURE } from '../../api/errors';

describe('parseBmcAddress', () => {
  it.each([
    ['redfish://10.0.0.5/redfish/v1/Systems/1', { protocol: 'redfish', vendor: 'generic', scheme: 'https', host: '10.0.0.5', port: 443, systemPath: '/redfish/v1/Systems/1' }],
    ['redfish+http://127.0.0.1:8000/redfish/v1/Systems/abc', { protocol: 'redfish', vendor: 'generic', scheme: 'http', host: '127.0.0.1', port: 8000, systemPath: '/redfish/v1/Systems/abc' }],
    ['redfish+https://bmc.example.com:8443', { protocol: 'redfish', vendor: 'generic', scheme: 'https', host: 'bmc.example.com', port: 8443, systemPath: '' }],
    ['redfish+http://10.0.0.5:80/redfish/v1/Systems/1/', { protocol: 'redfish', scheme: 'http', port: 80, systemPath: '/redfish/v1/Systems/1' }],
    ['idrac-redfish://10.0.0.7/redfish/v1/Systems/System.Embedded.1', { protocol: 'redfish', vendor: 'idrac', scheme: 'https', port: 443, systemPath: '/redfish/v1/Systems/System.Embedded.1' }],
    ['idrac-redfish+http://10.0.0.7:8080', { vendor: 'idrac', scheme: 'http', port: 8080 }],
    ['ilo5-redfish://10.0.0.8/redfish/v1/Systems/1', { vendor: 'ilo5', scheme: 'https', port: 443 }],
    ['ilo5-redfish+http://10.0.0.8', { vendor: 'ilo5', scheme: 'http', port: 80 }],
    ['ipmi://10.0.0.6', { protocol: 'ipmi', host: '10.0.0.6', port: 623, systemPath: '' }],
    ['ipmi://10.0.0.6:6230', { protocol: 'ipmi', host: '10.0.0.6', port: 6230 }],
    ['10.0.0.9', { protocol: 'ipmi', host: '10.0.0.9', port: 623 }],
    ['10.0.0.9:6231', { protocol: 'ipmi', host: '10.0.0.9', port: 6231 }],
    ['redfish://[fd00::5]:8443/redfish/v1/Systems/1', { protocol: 'redfish', host: 'fd00::5', port: 8443 }],
    ['REDFISH://10.0.0.5', { protocol: 'redfish', scheme: 'https' }],
  ])('%s parses as %j', (address, expected) => {
    expect(parseBmcAddress(address)).toMatchObject({ ...expected, address });
  });

  it.each([
    ['libvirt://10.0.0.5', 'unknown scheme "libvirt://"'],
    ['irmc://10.0.0.5', 'unknown scheme "irmc://"'],
    ['', 'is empty'],
    ['ipmi://10.0.0.6/redfish/v1', 'has a path'],
    ['redfish://10.0.0.5/something', 'expected a Redfish system path'],
  ])('%j is refused as a non-retryable BmcAddressInvalid (%s) that lists the accepted schemes', (address, why) => {
    let err: unknown;
    try {
      parseBmcAddress(address);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ type: FAILURE.BmcAddressInvalid, nonRetryable: true });
    const message = (err as Error).message;
    expect(message).toContain(`"${address}"`);
    expect(message).toContain(why);
    expect(message).toContain('redfish+http://');
    expect(message).toContain('ipmi://');
    expect(message).toContain('idrac-redfish://');
  });

  // Passwords chosen to defeat a URL parser: '/', '?' and '#' end the
  // authority early, so a parser would see "user" as the host and quote the
  // rest in its error; '@' twice, and percent signs.
  it.each([
    ['redfish://admin:Zq8-leak-1@10.0.0.5/redfish/v1/Systems/1', 'Zq8-leak-1', 'redfish://REDACTED@10.0.0.5/redfish/v1/Systems/1'],
    ['redfish+http://admin:p/a?s#s-leak-2@127.0.0.1:8000', 'p/a?s#s-leak-2', 'redfish+http://REDACTED@127.0.0.1:8000'],
    ['ipmi://root:two@at@leak-3@10.0.0.6:623', 'two@at@leak-3', 'ipmi://REDACTED@10.0.0.6:623'],
    ['root:bare-leak-4@10.0.0.7', 'bare-leak-4', 'REDACTED@10.0.0.7'],
    ['idrac-redfish://u:%41%42-leak-5@h', '%41%42-leak-5', 'idrac-redfish://REDACTED@h'],
  ])('%j is refused without quoting its credentials', (address, secret, redacted) => {
    let err: unknown;
    try {
      parseBmcAddress(address);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ type: FAILURE.BmcAddressInvalid, nonRetryable: true });
    const { message, stack } = err as Error;
    expect(message).toContain(`"${redacted}" contains "@"`);
    expect(message).toContain('put the credentials in the Secret named by spec.bmc.credentialsName');
    expect(message).not.toContain(secret);
    expect(stack).not.toContain(secret);
  });
});

describe('redactBmcAddress (api/, for the bridge, the workflow and status)', () => {
  it.each([
    ['redfish://admin:s3cret@10.0.0.5/redfish/v1/Systems/1', 'redfish://REDACTED@10.0.0.5/redfish/v1/Systems/1'],
    ['ipmi://u:p@ss/w#rd@10.0.0.6:623', 'ipmi://REDACTED@10.0.0.6:623'],
    ['admin:pw@10.0.0.7', 'REDACTED@10.0.0.7'],
    ['user:a://b@host', 'REDACTED@host'],
    ['ipmi://10.0.0.6', 'ipmi://10.0.0.6'],
    ['redfish+http://127.0.0.1:8000/redfish/v1/Systems/1', 'redfish+http://127.0.0.1:8000/redfish/v1/Systems/1'],
    ['', ''],
  ])('%j → %j', (address, expected) => {
    expect(redactBmcAddress(address)).toBe(expected);
    expect(bmcAddressHasCredentials(address)).toBe(address.includes('@'));
  });

  it('keeps a redacted address refused, so redaction never makes a bad address work', () => {
    const redacted = redactBmcAddress('redfish://admin:pw@10.0.0.5/redfish/v1/Systems/1');
    expect(() => parseBmcAddress(redacted)).toThrow(/contains "@"/);
  });
});
