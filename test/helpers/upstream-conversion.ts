import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { loadUpstreamIndex } from '../../k8s-bridge/upstream-crds';
import { crdDirectory } from '../../k8s-bridge/install-crds';
import { join } from 'node:path';
import { loadToolPaths } from '../../workers/embedded/tools';
import type { ManifestObject } from './strict-apply';

/**
 * Converts objects with the conversion handler of ironflow-upstream-webhooks
 * called directly (its --convert-to mode), without the kube-apiserver: the
 * reference the kube-apiserver's answers are compared with.
 */
export function offlineConvert(kubeconfig: string, objects: ManifestObject[], apiVersion: string): ManifestObject[] {
  const out = execFileSync(loadToolPaths().upstreamWebhooks, ['--kubeconfig', kubeconfig, '--convert-to', apiVersion], { input: JSON.stringify(objects), encoding: 'utf8', maxBuffer: 64 << 20 });
  return JSON.parse(out) as ManifestObject[];
}

/** Served versions of each `group/Kind` whose upstream CRD serves more than one. */
export function multiVersionKinds(): Map<string, string[]> {
  const index = loadUpstreamIndex(join(crdDirectory(), 'upstream'));
  const out = new Map<string, string[]>();
  for (const e of index.crds) {
    if ((e.served?.length ?? 0) < 2 || !e.name || !e.kind) continue;
    out.set(`${e.name.split('.').slice(1).join('.')}/${e.kind}`, e.served!);
  }
  return out;
}

/** What a reader compares across versions: the object's content, not its bookkeeping. */
export function content(o: ManifestObject): Record<string, unknown> {
  const m = o.metadata as { labels?: unknown; annotations?: Record<string, string> };
  return { apiVersion: o.apiVersion, kind: o.kind, labels: m.labels, annotations: m.annotations, spec: o.spec, status: o.status };
}

interface Schema {
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  default?: unknown;
  nullable?: boolean;
}

/**
 * What the kube-apiserver does to a conversion webhook's answer before a
 * client sees it: null values of non-nullable fields are dropped and, when
 * the target is the storage version (the object as decoded from etcd), that
 * version's schema defaults fill what is missing (structural-schema order:
 * prune nulls, then default; other versions are not defaulted on read).
 * Applied to the direct conversion so both sides went through the same step.
 */
export function asServed(o: ManifestObject): ManifestObject {
  const [group, version] = o.apiVersion.split('/');
  const index = loadUpstreamIndex(join(crdDirectory(), 'upstream'));
  const entry = index.crds.find((e) => e.kind === o.kind && e.name?.endsWith(`.${group}`));
  if (!entry) throw new Error(`no upstream CRD for ${o.apiVersion} ${o.kind}`);
  const crd = parse(readFileSync(join(crdDirectory(), 'upstream', entry.file), 'utf8')) as { spec: { versions: Array<{ name: string; schema: { openAPIV3Schema: Schema } }> } };
  const schema = crd.spec.versions.find((v) => v.name === version)?.schema.openAPIV3Schema;
  const out = JSON.parse(JSON.stringify(o)) as ManifestObject;
  if (schema) walk(out, schema, version === entry.storage);
  return out;
}

function walk(value: unknown, schema: Schema, defaults: boolean): void {
  if (Array.isArray(value)) {
    if (schema.items) for (const v of value) walk(v, schema.items, defaults);
    return;
  }
  if (!value || typeof value !== 'object') return;
  const obj = value as Record<string, unknown>;
  for (const [k, s] of Object.entries(schema.properties ?? {})) {
    if (obj[k] === null && !s.nullable) delete obj[k];
    if (defaults && obj[k] === undefined && s.default !== undefined) obj[k] = JSON.parse(JSON.stringify(s.default));
    if (obj[k] !== undefined) walk(obj[k], s, defaults);
  }
  if (schema.additionalProperties && typeof schema.additionalProperties === 'object') {
    for (const [k, v] of Object.entries(obj)) {
      if (schema.properties?.[k]) continue;
      if (v === null && !schema.additionalProperties.nullable) delete obj[k];
      else walk(v, schema.additionalProperties, defaults);
    }
  }
}
