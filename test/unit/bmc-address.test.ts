import { parseBmcAddress } from '../../activities/bmc/address';
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
    ['redfish://admin:pw@10.0.0.5', 'must not contain credentials'],
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
});
