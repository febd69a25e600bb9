/**
 * One jest run = the whole test pyramid. The global setup starts a real
 * Temporal dev server and a real kube-apiserver + etcd once; each test file
 * gets its own task queue and Kubernetes namespace from test/helpers.
 * Ironflow is CommonJS; the few ESM-only dependencies (@kubernetes/client-node,
 * redfish-client and their imports) are compiled to CommonJS by swc here,
 * as Node 20 does natively at run time with require(esm).
 * @type {import('jest').Config}
 */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.(t|j|mj)sx?$': ['@swc/jest', { jsc: { target: 'es2022' }, module: { type: 'commonjs' } }],
  },
  // Only the ESM-only packages are compiled; everything else loads as shipped.
  transformIgnorePatterns: [
    '/node_modules/(?!(@kubernetes/client-node|redfish-client|openid-client|oauth4webapi|jose|jsonpath-plus|jsep|@jsep-plugin|rfc4648)/)',
  ],
  moduleFileExtensions: ['ts', 'js', 'mjs', 'cjs', 'json'],
  setupFiles: ['<rootDir>/test/helpers/quiet-sdk-logs.ts'],
  globalSetup: '<rootDir>/test/helpers/global-setup.ts',
  globalTeardown: '<rootDir>/test/helpers/global-teardown.ts',
  testTimeout: 60_000,
  maxWorkers: 2,
  // Idle keep-alive sockets of @kubernetes/client-node keep a test worker
  // alive for ~10 s after its last test; the servers are stopped by the
  // global teardown either way.
  forceExit: true,
  reporters: ['default', '<rootDir>/test/helpers/summary-reporter.js'],
};
