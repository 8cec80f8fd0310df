// The keys that protect Archiver's secrets: Dropbox tokens at rest in Postgres and payloads in
// Temporal. Operators configure one keyring; each use derives its own key from it (HKDF), so a
// payload key never opens a token and the other way round.

import { hkdfSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** The variable that holds the keys, and the one that names a file holding them instead. */
export const SECRET_KEYS_VARIABLE = 'ARCHIVER_SECRET_KEYS';
export const SECRET_KEYS_FILE_VARIABLE = 'ARCHIVER_SECRET_KEYS_FILE';

/** A key id: short, and safe inside a ciphertext's `v1:<id>:…` prefix and payload metadata. */
const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;
/** AES-256 needs 32 bytes of key material. */
const KEY_BYTES = 32;

export interface SecretKey {
  id: string;
  /** 32 bytes; never logged. */
  material: Buffer;
}

/** What a key protects; each purpose gets its own derived key. */
export type KeyPurpose = 'tokens' | 'payloads';

/** One or more keys: `current` seals everything new, any of them opens what it sealed. */
export interface Keyring {
  current: SecretKey;
  byId(id: string): SecretKey | undefined;
  ids: readonly string[];
}

/** The keyring's configuration is missing or malformed; the message names the variable, never a key. */
export class SecretKeysInvalid extends Error {
  override name = 'SecretKeysInvalid';
}

/**
 * Parses `id:base64key` entries separated by commas or newlines, the first being the current key.
 * `source` names where the text came from, for the error message.
 * @throws SecretKeysInvalid naming the entry (by position and id) that is wrong
 */
export function parseKeyring(text: string, source: string): Keyring {
  const entries = text
    .split(/[,\n]/)
    .map((e) => e.trim())
    .filter((e) => e !== '' && !e.startsWith('#'));
  if (entries.length === 0)
    throw new SecretKeysInvalid(`${source} holds no key; expected one or more "<id>:<base64 of 32 bytes>"`);
  const keys = new Map<string, SecretKey>();
  entries.forEach((entry, index) => {
    const colon = entry.indexOf(':');
    const id = colon > 0 ? entry.slice(0, colon) : '';
    const where = `${source}, entry ${index + 1}`;
    if (!KEY_ID.test(id))
      throw new SecretKeysInvalid(`${where}: expected "<id>:<base64 key>" with an id of letters, digits, - or _`);
    const encoded = entry.slice(colon + 1);
    const material = Buffer.from(encoded, 'base64');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || material.length !== KEY_BYTES)
      throw new SecretKeysInvalid(
        `${where} (key id ${id}): the key must be ${KEY_BYTES} bytes in base64; generate one with \`openssl rand -base64 32\``,
      );
    if (keys.has(id)) throw new SecretKeysInvalid(`${where}: key id ${id} appears twice`);
    keys.set(id, { id, material });
  });
  const current = keys.get(entries[0]!.slice(0, entries[0]!.indexOf(':')))!;
  return { current, byId: (id) => keys.get(id), ids: [...keys.keys()] };
}

/**
 * The keyring from ARCHIVER_SECRET_KEYS, or from the file ARCHIVER_SECRET_KEYS_FILE names;
 * undefined when neither is set.
 * @throws SecretKeysInvalid when set but unreadable or malformed
 */
export function loadKeyring(env: NodeJS.ProcessEnv = process.env): Keyring | undefined {
  const inline = env[SECRET_KEYS_VARIABLE];
  const file = env[SECRET_KEYS_FILE_VARIABLE];
  if (inline && file)
    throw new SecretKeysInvalid(`set ${SECRET_KEYS_VARIABLE} or ${SECRET_KEYS_FILE_VARIABLE}, not both`);
  if (inline) return parseKeyring(inline, SECRET_KEYS_VARIABLE);
  if (!file) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new SecretKeysInvalid(
      `${SECRET_KEYS_FILE_VARIABLE}=${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
    );
  }
  return parseKeyring(text, `${SECRET_KEYS_FILE_VARIABLE} (${file})`);
}

/** A new keyring entry, `<id>:<base64 key>`, from Node's CSPRNG. */
export function generateKeyEntry(id: string): string {
  if (!KEY_ID.test(id)) throw new SecretKeysInvalid(`key id ${JSON.stringify(id)} must be letters, digits, - or _`);
  return `${id}:${randomBytes(KEY_BYTES).toString('base64')}`;
}

/** The AES-256 key for `purpose`, derived from `key` with HKDF-SHA256. */
export function derivedKey(key: SecretKey, purpose: KeyPurpose): Buffer {
  return Buffer.from(hkdfSync('sha256', key.material, Buffer.alloc(0), `archiver ${purpose} v1`, KEY_BYTES));
}
