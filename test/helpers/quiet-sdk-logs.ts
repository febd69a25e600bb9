import { DefaultLogger, Runtime } from '@temporalio/worker';

// The SDK logs every worker state change at INFO; tests only need warnings.
Runtime.install({ logger: new DefaultLogger('WARN') });
