import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../api/project-root';

/** Absolute paths of the binaries `scripts/setup.sh` installed or built. */
export interface ToolPaths {
  temporal: string;
  temporalTestServer: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubectl: string;
  etcd: string;
  openssl: string;
  /** Upstream's conversion and admission webhooks (scripts/build-upstream-webhooks.sh). */
  upstreamWebhooks: string;
}

/** The repository root (where package.json is), from source or from dist/. */
export const PROJECT_ROOT = projectRoot(__dirname);

/** Where local state lives: data, logs, kubeconfig. Git-ignored. */
export const STATE_DIR = process.env.IRONFLOW_STATE_DIR ?? join(PROJECT_ROOT, '.ironflow');

export function loadToolPaths(): ToolPaths {
  const file = join(PROJECT_ROOT, '.ironflow', 'tools.json');
  let raw: string;
  try {
    raw = readFileSync(file, 'utf8');
  } catch {
    throw new Error(`${file} is missing: run \`npm run setup\` (or \`npm start\` / \`npm test\`, which run it) first`);
  }
  const tools = JSON.parse(raw) as Partial<ToolPaths>;
  const missing = (['temporal', 'kubeApiserver', 'kubeControllerManager', 'kubectl', 'etcd'] as const).filter((k) => !tools[k]);
  if (missing.length > 0) throw new Error(`${file} names no ${missing.join(', ')} (written by an older setup): run \`npm run setup\` again`);
  return tools as ToolPaths;
}

/** A tool setup may not have built yet (an older .ironflow/tools.json): its path, or what to run. */
export function requireTool(path: string | undefined, name: string): string {
  if (!path) throw new Error(`.ironflow/tools.json has no "${name}": run \`npm run setup\` (it builds scripts/build-upstream-webhooks.sh)`);
  return path;
}
