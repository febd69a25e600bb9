/**
 * The BareMetalHost + Secret manifests for a running lab, as an operator
 * would keep them in Git: `kubectl apply -f` the output and Ironflow takes
 * the servers over. Passwords appear here because these are the lab's own
 * throwaway BMC credentials, written to a 0600 file, never logged.
 */
import { stringify } from 'yaml';
import type { LabInventory, LabServer } from '../api/lab';

export function renderHostManifests(inv: LabInventory, bmcAddressOf: (s: LabServer) => string, opts: { online?: boolean } = {}): string {
  const docs = inv.servers.flatMap((s) => [
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `${s.name}-bmc`, namespace: inv.namespace },
      type: 'Opaque',
      stringData: { username: s.bmc.username, password: s.bmc.password },
    },
    {
      apiVersion: 'metal3.io/v1alpha1',
      kind: 'BareMetalHost',
      metadata: { name: s.name, namespace: inv.namespace, labels: { 'ironflow.dev/lab': 'true', 'ironflow.dev/vendor': s.vendor.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/-+$/, '') } },
      spec: {
        online: opts.online ?? false,
        bootMACAddress: s.nics[0]!.mac,
        bmc: { address: bmcAddressOf(s), credentialsName: `${s.name}-bmc` },
        automatedCleaningMode: 'metadata',
      },
    },
  ]);
  const ns = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: inv.namespace } };
  return [ns, ...docs].map((d) => stringify(d)).join('---\n');
}
