// Lint rules; the workflows/ override is the determinism fence: workflow code
// may import only api/, other workflow modules and @temporalio/workflow, and
// may reference activities by type only.
const tseslint = require('typescript-eslint');

const nodeBuiltins = require('node:module').builtinModules.flatMap((m) => [m, `node:${m}`]);

module.exports = tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.venv/**', 'coverage/**', '**/*.js'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { project: './tsconfig.json', tsconfigRootDir: __dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'Workflow code must be deterministic: no Node built-ins (do it in an activity).' })),
          patterns: [
            { group: ['@temporalio/client', '@temporalio/worker', '@temporalio/activity', '@kubernetes/*', 'redfish-client', 'node-tftp', 'pino'], message: 'Workflows import only api/ and @temporalio/workflow.' },
            { group: ['**/activities/**', '**/k8s-bridge/**', '**/workers/**', '**/lab/**', '**/cli/**'], allowTypeImports: true, message: 'Workflows reference activities by type only (proxyActivities<typeof ...>).' },
          ],
        },
      ],
    },
  },
);
