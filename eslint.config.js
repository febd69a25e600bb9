// Lint rules. The folder rules (README.md, Layout) are enforced here for
// every folder: who may import whom, and no import cycles anywhere. The
// workflows/ override is also the determinism fence: workflow code may import
// only api/, other workflow modules and @temporalio/workflow, and may
// reference activities by type only.
const tseslint = require('typescript-eslint');
const ts = require('typescript');

const nodeBuiltins = require('node:module').builtinModules.flatMap((m) => [m, `node:${m}`]);

/** Import patterns of a top-level folder of ours, as relative imports from up to four levels down reach it. */
const folder = (name) => [1, 2, 3, 4].flatMap((depth) => ['../'.repeat(depth) + name, `${'../'.repeat(depth)}${name}/**`]);
const ours = (...names) => names.flatMap(folder);
const only = (who, allowed, names) => ({
  group: ours(...names),
  message: `${who} may import only ${allowed} of ours (the folder rules in eslint.config.js).`,
});

/** Which folders each folder must not import (everything of ours it is not allowed). */
const folderRules = [
  { files: ['api/**/*.ts'], patterns: [only('api/', 'nothing', ['workflows', 'activities', 'workers', 'k8s-bridge', 'lab', 'cli', 'test', 'bench', 'scripts'])] },
  { files: ['activities/**/*.ts'], patterns: [only('activities/', 'api/', ['workflows', 'workers', 'k8s-bridge', 'lab', 'cli', 'test', 'bench', 'scripts'])] },
  { files: ['k8s-bridge/**/*.ts'], patterns: [only('k8s-bridge/', 'api/', ['workflows', 'activities', 'workers', 'lab', 'cli', 'test', 'bench', 'scripts'])] },
  {
    files: ['lab/**/*.ts'],
    patterns: [only('lab/ (virtual hardware, run beside the plane)', 'api/', ['workflows', 'activities', 'workers', 'k8s-bridge', 'cli', 'test', 'bench', 'scripts'])],
  },
  { files: ['workers/**/*.ts'], patterns: [only('workers/ (the product process never embeds the test lab)', 'api/, workflows/, activities/ and k8s-bridge/', ['lab', 'cli', 'test', 'bench', 'scripts'])] },
  {
    files: ['cli/**/*.ts'],
    patterns: [
      only('cli/', 'api/', ['workflows', 'activities', 'workers', 'k8s-bridge', 'lab', 'test', 'bench', 'scripts']),
      { group: ['@temporalio/worker', '@temporalio/workflow', '@temporalio/activity'], message: 'cli/ talks to Temporal through @temporalio/client only.' },
    ],
  },
  // npm start's launcher runs the lab as a process, never as code.
  { files: ['scripts/**/*.ts'], patterns: [only('scripts/', 'api/ and workers/', ['workflows', 'activities', 'k8s-bridge', 'lab', 'cli', 'test', 'bench'])] },
];

/**
 * Relative runtime imports of every source file of the program (type-only
 * imports are erased by the compiler and cannot form a cycle at run time).
 */
const graphs = new WeakMap();
function importGraph(program) {
  let graph = graphs.get(program);
  if (graph) return graph;
  graph = new Map();
  const options = program.getCompilerOptions();
  for (const sf of program.getSourceFiles()) {
    if (sf.isDeclarationFile || sf.fileName.includes('/node_modules/')) continue;
    const deps = new Map();
    for (const st of sf.statements) {
      const isImport = ts.isImportDeclaration(st);
      if (!isImport && !ts.isExportDeclaration(st)) continue;
      if (!st.moduleSpecifier || !ts.isStringLiteral(st.moduleSpecifier) || !st.moduleSpecifier.text.startsWith('.')) continue;
      if (isImport) {
        const c = st.importClause;
        if (c && (c.isTypeOnly || (!c.name && c.namedBindings && ts.isNamedImports(c.namedBindings) && c.namedBindings.elements.length > 0 && c.namedBindings.elements.every((e) => e.isTypeOnly)))) continue;
      } else if (st.isTypeOnly) continue;
      const r = ts.resolveModuleName(st.moduleSpecifier.text, sf.fileName, options, ts.sys).resolvedModule;
      if (r && !r.isExternalLibraryImport && !r.resolvedFileName.endsWith('.d.ts')) deps.set(st.moduleSpecifier.text, r.resolvedFileName);
    }
    graph.set(sf.fileName, deps);
  }
  graphs.set(program, graph);
  return graph;
}

/** A path from `from` back to `to` in the graph, or undefined. */
function pathBack(graph, from, to) {
  const seen = new Set();
  const walk = (file, trail) => {
    if (file === to) return trail;
    if (seen.has(file)) return undefined;
    seen.add(file);
    for (const next of (graph.get(file) ?? new Map()).values()) {
      const found = walk(next, [...trail, next]);
      if (found) return found;
    }
    return undefined;
  };
  return walk(from, [from]);
}

const noImportCycle = {
  meta: { type: 'problem', messages: { cycle: 'import cycle: {{path}}' }, schema: [] },
  create(context) {
    const program = context.sourceCode.parserServices?.program;
    if (!program) return {};
    const me = context.filename;
    const rel = (f) => require('node:path').relative(__dirname, f);
    return {
      'ImportDeclaration, ExportNamedDeclaration, ExportAllDeclaration'(node) {
        if (!node.source || node.importKind === 'type' || node.exportKind === 'type') return;
        const graph = importGraph(program);
        const target = graph.get(program.getSourceFile(me)?.fileName ?? me)?.get(node.source.value);
        if (!target) return;
        const back = pathBack(graph, target, program.getSourceFile(me)?.fileName ?? me);
        if (back) context.report({ node, messageId: 'cycle', data: { path: [me, ...back].map(rel).join(' -> ') } });
      },
    };
  },
};

module.exports = tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.venv/**', 'coverage/**', '**/*.js'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { project: './tsconfig.json', tsconfigRootDir: __dirname } },
    plugins: { ironflow: { rules: { 'no-import-cycle': noImportCycle } } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'ironflow/no-import-cycle': 'error',
    },
  },
  ...folderRules.map(({ files, patterns }) => ({ files, rules: { 'no-restricted-imports': ['error', { patterns }] } })),
  {
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'Workflow code must be deterministic: no Node built-ins (do it in an activity).' })),
          patterns: [
            { group: ['@temporalio/client', '@temporalio/worker', '@temporalio/activity', '@kubernetes/*', 'redfish-client', 'node-tftp', 'pino'], message: 'Workflows import only api/ and @temporalio/workflow.' },
            { group: ['**/activities/**', '**/k8s-bridge/**', '**/workers/**', '**/lab/**', '**/cli/**', '**/test/**', '**/bench/**', '**/scripts/**'], allowTypeImports: true, message: 'Workflows reference activities by type only (proxyActivities<typeof ...>).' },
          ],
        },
      ],
    },
  },
);
