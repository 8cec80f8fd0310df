// AES-256-GCM from Node's crypto, the one cipher Archiver uses: a random 96-bit IV per message and
// the 128-bit tag, so a changed byte, a wrong key or a ciphertext moved to another row (the AAD)
// fails to open rather than reading as garbage.

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { derivedKey, type KeyPurpose, type Keyring } from './keyring.js';

const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Sealed text: `v1:<key id>:<base64 of iv | ciphertext | tag>`. */
const SEALED_TEXT = /^v1:([A-Za-z0-9_-]{1,32}):([A-Za-z0-9+/]+={0,2})$/;

/** A ciphertext names a key id the keyring does not hold. */
export class UnknownSecretKey extends Error {
  override name = 'UnknownSecretKey';
  constructor(readonly keyId: string) {
    super(`sealed with key id ${keyId}, which the keyring does not hold; add that key to ARCHIVER_SECRET_KEYS`);
  }
}

/** A ciphertext failed its authentication: a wrong key under the right id, or changed bytes. */
export class SecretUnreadable extends Error {
  override name = 'SecretUnreadable';
}

/** iv | ciphertext | tag of `plaintext` under `key`, bound to `aad`. */
export function sealBytes(key: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]);
}

/** @throws SecretUnreadable if `sealed` was not sealed under `key` with `aad`, or was changed */
export function openBytes(key: Buffer, sealed: Uint8Array, aad: Buffer): Buffer {
  if (sealed.length < IV_BYTES + TAG_BYTES) throw new SecretUnreadable('ciphertext is too short');
  const bytes = Buffer.from(sealed);
  const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, IV_BYTES));
  decipher.setAAD(aad);
  decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(bytes.subarray(IV_BYTES, bytes.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw new SecretUnreadable('ciphertext failed authentication: a wrong key, or it was changed');
  }
}

/** Whether `text` is sealed text (of any key), as opposed to a plaintext secret. */
export function isSealedText(text: string): boolean {
  return SEALED_TEXT.test(text);
}

/** The key id sealed text names; undefined for plaintext. */
export function sealedKeyId(text: string): string | undefined {
  return SEALED_TEXT.exec(text)?.[1];
}

/** Seals `text` under the keyring's current key for `purpose`, bound to `context` (e.g. the row it lives in). */
export function sealText(keyring: Keyring, purpose: KeyPurpose, text: string, context: string): string {
  const { current } = keyring;
  const sealed = sealBytes(derivedKey(current, purpose), Buffer.from(text, 'utf8'), Buffer.from(context, 'utf8'));
  return `v1:${current.id}:${sealed.toString('base64')}`;
}

/**
 * Opens sealed text.
 * @throws UnknownSecretKey, SecretUnreadable; an Error if `sealed` is not sealed text
 */
export function openText(keyring: Keyring, purpose: KeyPurpose, sealed: string, context: string): string {
  const match = SEALED_TEXT.exec(sealed);
  if (!match) throw new SecretUnreadable('not sealed text');
  const key = keyring.byId(match[1]!);
  if (!key) throw new UnknownSecretKey(match[1]!);
  return openBytes(derivedKey(key, purpose), Buffer.from(match[2]!, 'base64'), Buffer.from(context, 'utf8')).toString(
    'utf8',
  );
}
