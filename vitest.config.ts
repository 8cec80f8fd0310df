import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Two cores: more parallel files only make the Temporal and Postgres servers contend.
    maxWorkers: 2,
    // The product's tests, and each workspace package's own (with its own vitest.config.ts).
    projects: [
      {
        test: {
          name: 'archiver',
          include: ['test/**/*.test.ts'],
          // The production topology has its own command: npm run test:cluster (vitest.cluster.config.ts).
          exclude: ['test/cluster/**'],
          // Temporal's native runtime does not work in worker threads; each file gets its own process.
          pool: 'forks',
          globalSetup: ['test/support/global-setup.ts'],
          setupFiles: ['test/support/quiet-runtime.ts', 'test/support/secret-keys.ts'],
          testTimeout: 60_000,
          hookTimeout: 180_000,
        },
      },
      'packages/*',
    ],
  },
});
