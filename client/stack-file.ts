import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SECRET_KEYS_FILE_VARIABLE, SECRET_KEYS_VARIABLE } from '../secrets/keyring.js';

/** The project's root, where `.data/` and `.tools/` live. */
export const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Everything the embedded stack keeps between runs. @default `.data/` in the project */
export const DATA_DIR = process.env.ARCHIVER_DATA_DIR
  ? resolve(process.env.ARCHIVER_DATA_DIR)
  : join(PROJECT_ROOT, '.data');
/** Where `npm start` records the addresses of the stack it is running, for the CLI in another terminal; the worker never reads it. */
export const STACK_FILE = join(DATA_DIR, 'stack.env');

/** Reads `.data/stack.env` (KEY=value lines); empty when `npm start` has not run. */
export function readStackFile(path = STACK_FILE): Record<string, string> {
  if (!existsSync(path)) return {};
  const values: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const match = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (match?.[1] !== undefined && match[2] !== undefined) values[match[1]] = match[2];
  }
  return values;
}

export function writeStackFile(values: Record<string, string>, path = STACK_FILE): void {
  mkdirSync(dirname(path), { recursive: true });
  const lines = Object.entries(values).map(([k, v]) => `${k}=${v}`);
  writeFileSync(path, `# Written by npm start: the embedded stack it is running.\n${lines.join('\n')}\n`, {
    mode: 0o600,
  });
}

/**
 * Where to load the keyring from: this process's environment when it configures the keys, else
 * the key file the stack of `npm start` records (its development key), if any.
 */
export function secretKeysEnv(stack: Record<string, string> = readStackFile()): NodeJS.ProcessEnv {
  if (process.env[SECRET_KEYS_VARIABLE] || process.env[SECRET_KEYS_FILE_VARIABLE]) return process.env;
  const file = stack[SECRET_KEYS_FILE_VARIABLE];
  return file ? { [SECRET_KEYS_FILE_VARIABLE]: file } : process.env;
}
