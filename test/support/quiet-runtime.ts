import { DefaultLogger, Runtime } from '@temporalio/worker';

// Per-item info logs drown test failures; warnings and errors still show.
Runtime.install({ logger: new DefaultLogger('WARN') });
