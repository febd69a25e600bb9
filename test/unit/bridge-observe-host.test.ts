import { HOST_ANNOTATIONS } from '../../api/host';
import { observeHost, recordedStatus, type BareMetalHostObject } from '../../k8s-bridge/observe-host';

const host = (over: Partial<BareMetalHostObject['metadata']> = {}, spec: Record<string, unknown> = {}): BareMetalHostObject => ({
  apiVersion: 'metal3.io/v1alpha1',
  kind: 'BareMetalHost',
  metadata: { name: 'server-01', namespace: 'metal3', generation: 3, resourceVersion: '1234', ...over },
  spec: { online: true, bmc: { address: 'redfish://10.0.0.1/redfish/v1/Systems/1', credentialsName: 'server-01-bmc' }, ...spec },
});

describe('observeHost', () => {
  it('reduces a full Metal3 spec to HostSpec, dropping fields Ironflow does not act on', () => {
    const obs = observeHost(
      host(
        {},
        {
          bootMACAddress: '52-54-00-AA-BB-01',
          bootMode: 'UEFI',
          description: 'rack 4',
          image: { url: 'http://img/ubuntu.qcow2', checksum: 'abc', checksumType: 'sha256', format: 'qcow2' },
          userData: { name: 'ud', namespace: 'metal3' },
          consumerRef: { apiVersion: 'infrastructure.cluster.x-k8s.io/v1beta1', kind: 'Metal3Machine', name: 'm-1', namespace: 'metal3' },
          rootDeviceHints: { deviceName: '/dev/sda', minSizeGigabytes: 100, rotational: false, wwnWithExtension: 'x' },
          automatedCleaningMode: 'disabled',
          externallyProvisioned: true,
        },
      ),
    );
    expect(obs).toEqual({
      generation: 3,
      resourceVersion: '1234',
      paused: false,
      detached: false,
      preciousData: false,
      deleting: false,
      spec: {
        online: true,
        bmc: { address: 'redfish://10.0.0.1/redfish/v1/Systems/1', credentialsName: 'server-01-bmc' },
        bootMACAddress: '52:54:00:aa:bb:01',
        image: { url: 'http://img/ubuntu.qcow2', checksum: 'abc', checksumType: 'sha256', format: 'qcow2' },
        userData: { name: 'ud', namespace: 'metal3' },
        consumerRef: { apiVersion: 'infrastructure.cluster.x-k8s.io/v1beta1', kind: 'Metal3Machine', name: 'm-1', namespace: 'metal3' },
        rootDeviceHints: { deviceName: '/dev/sda', minSizeGigabytes: 100, rotational: false },
        automatedCleaningMode: 'disabled',
        externallyProvisioned: true,
      },
    });
  });

  it('defaults what the schema defaults, and tolerates a missing spec (the workflow reports it, the bridge must not crash)', () => {
    const obs = observeHost({ metadata: { name: 'x', namespace: 'y' } });
    expect(obs.spec).toEqual({ online: false, bmc: { address: '', credentialsName: '' }, automatedCleaningMode: 'metadata' });
    expect(obs.resourceVersion).toBe('');
    expect(obs.generation).toBe(0);
  });

  it('reads paused/detached/precious-data by presence, as Metal3 does (even an empty value)', () => {
    const obs = observeHost(host({ annotations: { [HOST_ANNOTATIONS.paused]: '', [HOST_ANNOTATIONS.detached]: 'true', other: 'x' } }));
    expect([obs.paused, obs.detached, obs.preciousData]).toEqual([true, true, false]);
    expect(observeHost(host({ annotations: { [HOST_ANNOTATIONS.preciousData]: 'yes' } })).preciousData).toBe(true);
  });

  it('marks deleting from deletionTimestamp', () => {
    expect(observeHost(host({ deletionTimestamp: '2026-01-01T00:00:00Z' })).deleting).toBe(true);
    expect(observeHost(host()).deleting).toBe(false);
  });

  it('ignores an image without url and a malformed checksumType rather than passing junk on', () => {
    const obs = observeHost(host({}, { image: { checksum: 'x' }, consumerRef: { kind: 'Machine' } }));
    expect(obs.spec.image).toBeUndefined();
    expect(obs.spec.consumerRef).toBeUndefined();
    expect(observeHost(host({}, { image: { url: 'u', checksumType: 'crc32' } })).spec.image).toEqual({ url: 'u' });
  });
});

describe('what a new host workflow run is given besides the spec', () => {
  it('never passes credentials written into a BMC address on (they would land in history and search attributes)', () => {
    const obs = observeHost(host({}, { bmc: { address: 'redfish://admin:s3cret-pw@10.0.0.1/redfish/v1/Systems/1', credentialsName: 'c' } }));
    expect(obs.spec.bmc.address).toBe('redfish://REDACTED@10.0.0.1/redfish/v1/Systems/1');
    expect(JSON.stringify(obs)).not.toContain('s3cret-pw');
  });

  it('passes the recorded status, the durable record a new run adopts from', () => {
    const withStatus: BareMetalHostObject = {
      ...host(),
      status: {
        provisioning: { state: 'provisioned', image: { url: 'http://img/os.img', checksum: 'a'.repeat(64) }, ID: 'vda' },
        operationalStatus: 'OK', errorType: '', errorMessage: '', errorCount: 0, poweredOn: true,
        hardware: { cpu: { arch: 'x86_64', model: 'm', count: 2 }, memoryMiB: 4096, disks: [], nics: [], system: { serialNumber: 'SN-1' } },
        lastUpdated: '2026-11-30T00:00:00Z',
      },
    };
    expect(recordedStatus(withStatus)).toEqual({
      provisioning: { state: 'provisioned', image: { url: 'http://img/os.img', checksum: 'a'.repeat(64) }, ID: 'vda' },
      operationalStatus: 'OK', errorCount: 0, poweredOn: true,
      hardware: { cpu: { arch: 'x86_64', model: 'm', count: 2 }, memoryMiB: 4096, disks: [], nics: [], system: { serialNumber: 'SN-1' } },
      lastUpdated: '2026-11-30T00:00:00Z',
    });
  });

  it('passes no recorded status for a host that never had one, or one with a state it does not know', () => {
    expect(recordedStatus(host())).toBeUndefined();
    expect(recordedStatus({ ...host(), status: { provisioning: { state: 'ready' } } })).toBeUndefined();
    expect(recordedStatus({ ...host(), status: { operationalStatus: 'OK' } })).toBeUndefined();
  });

  it('keeps a recorded error (type, message, count) so the new run goes on backing off from it', () => {
    const rec = recordedStatus({ ...host(), status: { provisioning: { state: 'registering' }, errorType: 'registration error', errorMessage: 'Secret gone', errorCount: 4, operationalStatus: 'error' } });
    expect(rec).toMatchObject({ errorType: 'registration error', errorMessage: 'Secret gone', errorCount: 4, operationalStatus: 'error' });
  });
});
