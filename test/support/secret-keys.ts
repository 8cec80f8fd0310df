// The fixed keyring of the tests, set in every test file's process (setupFiles in vitest.config.ts
// and vitest.cluster.config.ts), so the worker processes and CLIs the tests spawn inherit it.
import { createHash } from 'node:crypto';
import { parseKeyring, SECRET_KEYS_FILE_VARIABLE, SECRET_KEYS_VARIABLE, type Keyring } from '../../secrets/keyring.js';

/** A keyring entry derived from `label`, so every run uses the same keys; only ever a test key. */
export function testKeyEntry(id: string, label = id): string {
  return `${id}:${createHash('sha256').update(`archiver test key ${label}`).digest('base64')}`;
}

/** ARCHIVER_SECRET_KEYS of the tests. */
export const TEST_SECRET_KEYS = testKeyEntry('test-1');

/** The tests' keyring, as the worker loads it. */
export const testKeyring = (): Keyring => parseKeyring(TEST_SECRET_KEYS, 'the test keyring');

// The tests never use an operator's keys.
process.env[SECRET_KEYS_VARIABLE] = TEST_SECRET_KEYS;
delete process.env[SECRET_KEYS_FILE_VARIABLE];
