/**
 * Upstream example and e2e manifests as a user would apply them: clusterctl
 * variables (`${CLUSTER_NAME}`, `${VAR:=default}`) filled in, documents split,
 * non-objects (kustomizations, empty documents) left out.
 */
import { parseAllDocuments } from 'yaml';
import type { ManifestObject } from './strict-apply';

/** A plausible value for a clusterctl variable that has no default, by its name. */
function valueFor(name: string, namespace: string): string {
  const n = name.toUpperCase();
  if (n === 'NAMESPACE') return namespace;
  if (n.includes('CLUSTER_NAME')) return 'c1';
  if (n.includes('VERSION')) return 'v1.31.2';
  if (/REPLICA|COUNT/.test(n)) return '1';
  if (n.includes('CIDR')) return '10.96.0.0/12';
  if (n.endsWith('PORT')) return '6443';
  if (/(_IP|HOST|ADDRESS)$/.test(n)) return '192.168.111.249';
  if (n.includes('CHECKSUM_TYPE')) return 'sha256';
  if (n.includes('CHECKSUM')) return 'http://172.22.0.1/images/img.qcow2.sha256sum';
  if (n.includes('FORMAT')) return 'qcow2';
  if (n.includes('IMAGE')) return 'http://172.22.0.1/images/img.qcow2';
  return 'x';
}

export function substitute(text: string, namespace: string): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[=-])([^}]*))?\}/g, (_m, name: string, op: string | undefined, def: string | undefined) =>
    op !== undefined && def !== undefined && def !== '' ? def : valueFor(name, namespace),
  );
}

/** The Kubernetes objects of one manifest file; a document that is no object is skipped, a YAML error throws. */
export function manifestObjects(text: string, source: string, namespace: string): ManifestObject[] {
  return parseAllDocuments(substitute(text, namespace))
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors[0]?.message}`);
      return doc.toJS() as ManifestObject | null;
    })
    .filter((o): o is ManifestObject => !!o && typeof o === 'object' && typeof o.apiVersion === 'string' && typeof o.kind === 'string' && !o.apiVersion.startsWith('kustomize.config.k8s.io') && !!o.metadata?.name);
}
