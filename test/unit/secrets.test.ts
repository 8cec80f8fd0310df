import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  isSealedText,
  openText,
  sealText,
  sealedKeyId,
  SecretUnreadable,
  UnknownSecretKey,
} from '../../secrets/aead.js';
import { generateKeyEntry, loadKeyring, parseKeyring, SecretKeysInvalid } from '../../secrets/keyring.js';

const k1 = generateKeyEntry('k1');
const k2 = generateKeyEntry('k2');

describe('the keyring', () => {
  it('takes id:key entries, the first being current, from the variable or a file', () => {
    const ring = parseKeyring(`${k2},\n${k1}\n`, 'test');
    expect(ring.current.id).toBe('k2');
    expect(ring.ids).toEqual(['k2', 'k1']);
    expect(ring.byId('k1')?.material).toHaveLength(32);
    const file = join(mkdtempSync(join(tmpdir(), 'keys-')), 'keys');
    writeFileSync(file, `# rotated 2026-12\n${k1}\n`);
    expect(loadKeyring({ ARCHIVER_SECRET_KEYS_FILE: file })?.current.id).toBe('k1');
    expect(loadKeyring({})).toBeUndefined();
  });

  it('refuses malformed keys with a message naming the variable and entry, never the key', () => {
    const short = `k1:${Buffer.alloc(16).toString('base64')}`;
    expect(() => parseKeyring(short, 'ARCHIVER_SECRET_KEYS')).toThrow(
      /ARCHIVER_SECRET_KEYS, entry 1 \(key id k1\).*32 bytes/,
    );
    expect(() => parseKeyring('nokey', 'ARCHIVER_SECRET_KEYS')).toThrow(SecretKeysInvalid);
    expect(() => parseKeyring('', 'ARCHIVER_SECRET_KEYS')).toThrow(/holds no key/);
    expect(() => parseKeyring(`${k1},${k1}`, 'X')).toThrow(/appears twice/);
    expect(() => loadKeyring({ ARCHIVER_SECRET_KEYS_FILE: '/nonexistent/keys' })).toThrow(/cannot be read \(ENOENT\)/);
    expect(() => loadKeyring({ ARCHIVER_SECRET_KEYS: k1, ARCHIVER_SECRET_KEYS_FILE: '/x' })).toThrow(/not both/);
    try {
      parseKeyring(`${k1.slice(0, -4)}`, 'X');
    } catch (err) {
      expect(String(err)).not.toContain(k1.slice(3, 20));
    }
  });
});

describe('sealed text', () => {
  const ring = parseKeyring(`${k2},${k1}`, 'test');
  it('opens under any key of the ring, and records which key sealed it', () => {
    const sealed = sealText(parseKeyring(k1, 'old'), 'tokens', 'refresh-token-value', 'customer:acme');
    expect(isSealedText(sealed)).toBe(true);
    expect(sealedKeyId(sealed)).toBe('k1');
    expect(sealed).not.toContain('refresh-token-value');
    expect(openText(ring, 'tokens', sealed, 'customer:acme')).toBe('refresh-token-value');
    expect(sealedKeyId(sealText(ring, 'tokens', 'x', 'c'))).toBe('k2');
    expect(isSealedText('sl.plaintext-token')).toBe(false);
  });

  it('refuses an unknown key id, a wrong key, changed bytes, another row and another purpose', () => {
    const sealed = sealText(ring, 'tokens', 'secret', 'customer:acme');
    expect(() => openText(parseKeyring(k1, 'x'), 'tokens', sealed, 'customer:acme')).toThrow(UnknownSecretKey);
    const impostor = parseKeyring(generateKeyEntry('k2'), 'x');
    expect(() => openText(impostor, 'tokens', sealed, 'customer:acme')).toThrow(SecretUnreadable);
    const body = Buffer.from(sealed.slice('v1:k2:'.length), 'base64');
    body[body.length - 20]! ^= 1;
    expect(() => openText(ring, 'tokens', `v1:k2:${body.toString('base64')}`, 'customer:acme')).toThrow(
      SecretUnreadable,
    );
    expect(() => openText(ring, 'tokens', sealed, 'customer:other')).toThrow(SecretUnreadable);
    expect(() => openText(ring, 'payloads', sealed, 'customer:acme')).toThrow(SecretUnreadable);
  });
});
