/**
 * Upstream files read in place for tests: from the Go module cache (the go
 * command downloads a pinned module version once, verified against the sum
 * pinned here) or, for modules the Go module proxy does not serve, from a
 * snapshot clone in $IRONFLOW_UPSTREAM_SNAPSHOTS (folders `<owner>+<name>/repo`,
 * bare Git repositories). Nothing is copied into the repository.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

export interface PinnedModule {
  module: string;
  version: string;
  sum: string;
}

/** Module versions whose example and e2e files the tests read. */
export const UPSTREAM_MODULES = {
  /** Cluster API's e2e data; v1.13.7 is the test module's release nearest the pinned v1.13.6 the proxy serves. */
  clusterApiTest: { module: 'sigs.k8s.io/cluster-api/test', version: 'v1.13.7', sum: 'h1:mkuxirLoeyhDCznEhpNATpXCtbIFIyOq/EeFk8EBb84=' },
  /**
   * Cluster API v1.9.5's e2e data still wrote MachineHealthChecks in v1beta1
   * (byte for byte the files v1.10.9 has). The proxy serves this version but
   * the checksum database does not list it, so its sum is pinned here alone.
   */
  clusterApiTestV19: { module: 'sigs.k8s.io/cluster-api/test', version: 'v1.9.5', sum: 'h1:DtiiDWCIGaWhp4cA7xzGPWeM796XIRQwOptLATe0yFg=' },
  capm3: { module: 'github.com/metal3-io/cluster-api-provider-metal3', version: 'v1.13.2', sum: 'h1:qYIXaHZp3Tcn2Taf+LZZ7rjATyKLVjguMS39pC640pw=' },
  bmo: { module: 'github.com/metal3-io/baremetal-operator', version: 'v0.13.2', sum: 'h1:XSkyBv4l1OvCL66b7T0FEUaGeS0zOjQKhot9V8zeZQc=' },
} as const satisfies Record<string, PinnedModule>;

/** Snapshot sources: repositories (or files) the module proxy does not serve. */
export const UPSTREAM_SNAPSHOTS = {
  sidero: { repo: 'siderolabs/sidero', ref: '05d715537521965a8b93defd2d082215f7a9c3c4' /* v0.6.13 */ },
  cacppt: { repo: 'siderolabs/cluster-api-control-plane-provider-talos', ref: '97b33e78ff1091bd143db6c428b8ed53ec3e0931' /* v0.5.12 */ },
  /** CAPM3's test module (e2e data) is not served by the proxy. */
  capm3: { repo: 'metal3-io/cluster-api-provider-metal3', ref: 'v1.13.2' },
} as const;

const moduleDirs = new Map<string, string>();

/** The module's folder in GOMODCACHE (downloaded on first use), after checking its sum. */
export function moduleDir(m: PinnedModule): string {
  const key = `${m.module}@${m.version}`;
  if (!moduleDirs.has(key)) {
    const out = execFileSync('go', ['mod', 'download', '-json', key], {
      encoding: 'utf8',
      cwd: join(__dirname, '..', '..', 'scripts', 'upstream-api'),
      env: { ...process.env, GOFLAGS: '-mod=mod', GONOSUMDB: 'github.com/metal3-io,github.com/siderolabs,sigs.k8s.io/cluster-api/test' },
    });
    const info = JSON.parse(out) as { Dir?: string; Sum?: string; Error?: string };
    if (!info.Dir || info.Error) throw new Error(`go mod download ${key}: ${info.Error ?? out}`);
    if (info.Sum !== m.sum) throw new Error(`${key} has sum ${info.Sum}, the test pins ${m.sum}`);
    moduleDirs.set(key, info.Dir);
  }
  return moduleDirs.get(key)!;
}

/** Every file under `dir` (relative paths, sorted) whose name matches. */
export function filesUnder(dir: string, match: RegExp): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d).sort()) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (match.test(e)) out.push(relative(dir, p));
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

/** The snapshot folder, or undefined when $IRONFLOW_UPSTREAM_SNAPSHOTS is not set. */
export function snapshotsRoot(): string | undefined {
  return process.env.IRONFLOW_UPSTREAM_SNAPSHOTS || undefined;
}

function gitDir(repo: string): string {
  const root = snapshotsRoot();
  if (!root) throw new Error('IRONFLOW_UPSTREAM_SNAPSHOTS is not set');
  const dir = join(root, repo.replace('/', '+'), 'repo');
  if (!existsSync(dir)) throw new Error(`no snapshot of ${repo} in ${root} (expected ${dir})`);
  return dir;
}

export function snapshotFiles(s: { repo: string; ref: string }, under: string, match: RegExp): string[] {
  const out = execFileSync('git', ['--git-dir', gitDir(s.repo), 'ls-tree', '-r', '--name-only', s.ref, under], { encoding: 'utf8' });
  return out.split('\n').filter((p) => p && match.test(p.split('/').pop() ?? '')).sort();
}

export function snapshotFile(s: { repo: string; ref: string }, path: string): string {
  return execFileSync('git', ['--git-dir', gitDir(s.repo), 'show', `${s.ref}:${path}`], { encoding: 'utf8', maxBuffer: 64 << 20 });
}

export function readModuleFile(m: PinnedModule, rel: string): string {
  return readFileSync(join(moduleDir(m), rel), 'utf8');
}
