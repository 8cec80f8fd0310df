import { defineConfig } from 'vitest/config';

// `npm run test:cluster`: the production topology (test/cluster), apart from `npm test` because the
// first run builds the Temporal Server (about 8 CPU-minutes) and each file runs a whole cluster.
export default defineConfig({
  test: {
    name: 'cluster',
    include: ['test/cluster/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 1,
    setupFiles: ['test/support/quiet-runtime.ts', 'test/support/secret-keys.ts'],
    testTimeout: 10 * 60_000,
    hookTimeout: 30 * 60_000,
  },
});
