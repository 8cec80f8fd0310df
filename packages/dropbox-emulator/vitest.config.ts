import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: 'dropbox-emulator',
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
  },
});
