// The development keyring of the embedded stack: with no ARCHIVER_SECRET_KEYS configured, `npm
// start` and `npm run cluster` seal Dropbox tokens under a key of their own, kept in `.data/`.

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DATA_DIR } from '../client/stack-file.js';
import { generateKeyEntry, SECRET_KEYS_FILE_VARIABLE, SECRET_KEYS_VARIABLE } from '../secrets/keyring.js';

/** Where the development key lives; deleting `.data/` deletes it with the tokens it sealed. */
export const DEV_SECRET_KEYS_FILE = join(DATA_DIR, 'secret-keys');

/**
 * Unless a keyring is configured, points ARCHIVER_SECRET_KEYS_FILE of this process (and so of
 * every process it starts) at the development key file, making it first (mode 0600) if it does
 * not exist. `log` says which.
 * @returns the file, or undefined when the environment configures the keys itself
 */
export function useDevSecretKeys(log: (line: string) => void): string | undefined {
  if (process.env[SECRET_KEYS_VARIABLE] || process.env[SECRET_KEYS_FILE_VARIABLE]) return undefined;
  mkdirSync(DATA_DIR, { recursive: true });
  const made = !existsSync(DEV_SECRET_KEYS_FILE);
  if (made)
    writeFileSync(
      DEV_SECRET_KEYS_FILE,
      `# Development key made by npm start; not for production.\n${generateKeyEntry('dev')}\n`,
      {
        mode: 0o600,
        flag: 'wx',
      },
    );
  process.env[SECRET_KEYS_FILE_VARIABLE] = DEV_SECRET_KEYS_FILE;
  log(
    `${SECRET_KEYS_VARIABLE} is not set: Dropbox tokens are sealed with the development key ${made ? 'made now in' : 'kept in'} ${DEV_SECRET_KEYS_FILE} (${SECRET_KEYS_FILE_VARIABLE})`,
  );
  return DEV_SECRET_KEYS_FILE;
}

/**
 * Unless a keyring is configured, gives this process (and the workers it starts) a key that lives
 * only in memory, for the bench and the chaos suite, whose databases do not outlive them.
 */
export function useEphemeralSecretKeys(): void {
  if (process.env[SECRET_KEYS_VARIABLE] || process.env[SECRET_KEYS_FILE_VARIABLE]) return;
  process.env[SECRET_KEYS_VARIABLE] = generateKeyEntry('ephemeral');
}
