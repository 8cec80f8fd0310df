import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Temporal's native runtime does not work in worker threads; each file gets its own process.
    pool: 'forks',
    globalSetup: ['test/support/global-setup.ts'],
    setupFiles: ['test/support/quiet-runtime.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    // Two cores: more parallel files only make the Temporal and Postgres servers contend.
    maxWorkers: 2,
  },
});
