// Customers' Dropbox tokens are sealed at rest: no token is readable in the customers table, a
// sealed token opens only in its own row and column, `archiver rotate-secrets` moves every row to
// a new key with customers still archiving, and a row it cannot open is named and left alone.
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { CustomerTokens } from '../../activities/dropbox/tokens.js';
import { upsertCustomer } from '../../db/customers.js';
import type { Db } from '../../db/pool.js';
import { TokenUnreadable } from '../../db/sealed-tokens.js';
import { loadTokens } from '../../db/tokens.js';
import { parseKeyring } from '../../secrets/keyring.js';
import { useArchiverStack } from '../support/archiver-stack.js';
import { startArchiving, startTestWorker, statusWhen } from '../support/harness.js';
import { insertItems } from '../support/items.js';
import { TEST_SECRET_KEYS, testKeyEntry, testKeyring } from '../support/secret-keys.js';
import { freshDatabase, uniqueName } from '../support/stack.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const APP = { key: 'tokens-at-rest-app', secret: 'tokens-at-rest-secret' };
/** The new key, first, and the tests' key after it: the keyring of step 2 of a rotation. */
const NEW_KEY = testKeyEntry('test-2');
const ROTATING = `${NEW_KEY},${TEST_SECRET_KEYS}`;
const newKeyOnly = () => parseKeyring(NEW_KEY, 'the new key');

const stack = useArchiverStack({ worker: false, emulator: { apps: [APP] } });
/** An empty data directory, so no stack file of a local `npm start` lends the CLI its key. */
const dataDir = mkdtempSync(join(tmpdir(), 'archiver-tokens-'));

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `npm run archiver -- …` against `databaseUrl`, with `env` over the tests' (which sets the test keyring). */
async function archiver(args: string[], env: Record<string, string> = {}, databaseUrl = stack.database.url) {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'client/cli.ts', ...args],
      {
        cwd: ROOT,
        env: { ...process.env, ARCHIVER_DATA_DIR: dataDir, DATABASE_URL: databaseUrl, ...env },
      },
    );
    return { code: 0, stdout, stderr } satisfies CliResult;
  } catch (err) {
    const e = err as CliResult;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr } satisfies CliResult;
  }
}

/** Every row of the customers table, every column as text: what a dump of it would show. */
async function dump(db: Db): Promise<string> {
  const rows = await db.query<{ row: string }>('SELECT c::text AS row FROM customers c ORDER BY id');
  return rows.map((r) => r.row).join('\n');
}

async function tokenColumns(db: Db, id: string) {
  const [row] = await db.query<Record<string, string | null>>(
    `SELECT dropbox_access_token, dropbox_refresh_token, candidate_access_token, candidate_refresh_token
       FROM customers WHERE id = $1`,
    [id],
  );
  return row;
}

/** A customer written before tokens were sealed: its token in plaintext, as an older Archiver wrote it. */
async function insertLegacyCustomer(db: Db, id: string, accessToken: string): Promise<void> {
  await db.query(`INSERT INTO customers (id, name, dropbox_access_token) VALUES ($1, $1, $2)`, [id, accessToken]);
}

/** The secrets that must never appear in output: the key material of every keyring used here. */
const keyMaterial = [TEST_SECRET_KEYS, NEW_KEY].map((entry) => entry.slice(entry.indexOf(':') + 1));

describe('Dropbox tokens at rest', () => {
  const refreshed = uniqueName('refreshed');
  const refreshToken = uniqueName('rt');
  const plain = uniqueName('plain');
  const plainToken = uniqueName('token');
  const legacy = uniqueName('legacy');
  const legacyToken = uniqueName('legacy-token');
  let mintedAccessToken = '';

  it('customers add and a token refresh leave no token in plaintext in the customers table', async () => {
    stack.emulator.addAccount({ refreshToken, appKey: APP.key });
    const added = await archiver([
      'customers',
      'add',
      refreshed,
      '--name',
      'Refreshed',
      '--refresh-token',
      refreshToken,
    ]);
    expect(added.code, added.stderr).toBe(0);
    expect(await dump(stack.database.db)).not.toContain(refreshToken);
    const tokens = new CustomerTokens({
      db: stack.database.db,
      keyring: testKeyring(),
      app: APP,
      apiBase: stack.emulator.url,
    });
    mintedAccessToken = await tokens.accessToken(refreshed);
    expect(mintedAccessToken).toMatch(/^sl\./);
    const table = await dump(stack.database.db);
    expect(table).not.toContain(refreshToken);
    expect(table).not.toContain(mintedAccessToken);
    expect(await tokenColumns(stack.database.db, refreshed)).toMatchObject({
      dropbox_access_token: expect.stringMatching(/^v1:test-1:/),
      dropbox_refresh_token: expect.stringMatching(/^v1:test-1:/),
    });
    // The tokens open again, and a second call reuses the stored access token.
    expect(await tokens.accessToken(refreshed)).toBe(mintedAccessToken);
  });

  it('a sealed token copied to another customer or column does not open there', async () => {
    const db = stack.database.db;
    const other = uniqueName('other');
    await upsertCustomer(db, testKeyring(), { id: other, name: other });
    const sealed = await tokenColumns(db, refreshed);
    await db.query(`UPDATE customers SET dropbox_refresh_token = $2 WHERE id = $1`, [
      other,
      sealed?.dropbox_refresh_token,
    ]);
    await expect(loadTokens(db, testKeyring(), other)).rejects.toThrow(TokenUnreadable);
    await db.query(`UPDATE customers SET dropbox_refresh_token = NULL, dropbox_access_token = $2 WHERE id = $1`, [
      other,
      sealed?.dropbox_refresh_token,
    ]);
    await expect(loadTokens(db, testKeyring(), other)).rejects.toThrow(
      new RegExp(`customer ${other}: the stored dropbox_access_token cannot be opened`),
    );
    await db.query(`DELETE FROM customers WHERE id = $1`, [other]);
  });

  it('reads a legacy plaintext token as it is until it is sealed', async () => {
    await insertLegacyCustomer(stack.database.db, legacy, legacyToken);
    expect(await loadTokens(stack.database.db, testKeyring(), legacy)).toMatchObject({ accessToken: legacyToken });
  });

  it('rotate-secrets under a new key re-seals every row, and every customer keeps archiving on the new key alone', async () => {
    const db = stack.database.db;
    stack.emulator.addAccount({ token: plainToken });
    await upsertCustomer(db, testKeyring(), { id: plain, name: plain, accessToken: plainToken });
    stack.emulator.addAccount({ token: legacyToken });

    const help = await archiver(['rotate-secrets', '--help']);
    expect(help.stdout).toMatch(/current key/);
    expect(help.stdout).toMatch(/openssl rand -base64 32/);

    const rotated = await archiver(['rotate-secrets'], { ARCHIVER_SECRET_KEYS: ROTATING });
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(rotated.stdout).toMatch(/rotated 2, already current 0, plaintext sealed 1, failed 0/);
    expect(rotated.stderr).toMatch(/rotate-secrets: 3\/3 customers/);
    for (const secret of [refreshToken, mintedAccessToken, plainToken, legacyToken, ...keyMaterial])
      expect(rotated.stdout + rotated.stderr).not.toContain(secret);
    const table = await dump(db);
    for (const secret of [refreshToken, mintedAccessToken, plainToken, legacyToken])
      expect(table).not.toContain(secret);
    for (const id of [refreshed, plain, legacy]) {
      const columns = Object.values((await tokenColumns(db, id)) ?? {}).filter((v) => v !== null);
      expect(columns.length).toBeGreaterThan(0);
      for (const value of columns) expect(value).toMatch(/^v1:test-2:/);
    }
    // The old key can go: everything opens under the new one alone.
    expect(await loadTokens(db, newKeyOnly(), refreshed)).toMatchObject({
      refreshToken,
      accessToken: mintedAccessToken,
    });
    expect(await loadTokens(db, newKeyOnly(), plain)).toMatchObject({ accessToken: plainToken });
    expect(await loadTokens(db, newKeyOnly(), legacy)).toMatchObject({ accessToken: legacyToken });

    const again = await archiver(['rotate-secrets'], { ARCHIVER_SECRET_KEYS: NEW_KEY });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/rotated 0, already current 3, plaintext sealed 0, failed 0/);

    const { stop } = await startTestWorker(stack.temporal, {
      db,
      keyring: newKeyOnly(),
      dropboxApiBase: stack.emulator.url,
      dropboxApp: APP,
    });
    try {
      for (const id of [refreshed, plain, legacy]) {
        await insertItems(db, id, undefined, stack.media.url, 3);
        await startArchiving(stack.temporal, id);
      }
      for (const id of [refreshed, plain, legacy]) {
        const status = await statusWhen(stack.temporal.client, id, (s) => s.totals.archived === 3);
        expect(status.totals.archived).toBe(3);
      }
    } finally {
      await stop();
    }
  });

  it('names each customer whose tokens cannot be opened (wrong key, unknown key id, tampered), never a secret, and leaves those rows as they were', async () => {
    const database = await freshDatabase();
    try {
      const db = database.db;
      const wrongKeyring = parseKeyring(testKeyEntry('test-1', 'another key under the same id'), 'wrong');
      const goneKeyring = parseKeyring(testKeyEntry('gone'), 'gone');
      const tokens = {
        fine: uniqueName('fine-token'),
        wrong: uniqueName('wrong-token'),
        unknown: uniqueName('unknown-token'),
        tampered: uniqueName('tampered-token'),
      };
      await upsertCustomer(db, testKeyring(), { id: 'fine', name: 'fine', accessToken: tokens.fine });
      await upsertCustomer(db, wrongKeyring, { id: 'wrong-key', name: 'wrong', refreshToken: tokens.wrong });
      await upsertCustomer(db, goneKeyring, { id: 'unknown-key', name: 'unknown', accessToken: tokens.unknown });
      await upsertCustomer(db, testKeyring(), { id: 'tampered', name: 'tampered', accessToken: tokens.tampered });
      const sealed = (await tokenColumns(db, 'tampered'))?.dropbox_access_token ?? '';
      const flipped = sealed.slice(0, -6) + (sealed.at(-6) === 'A' ? 'B' : 'A') + sealed.slice(-5);
      await db.query(`UPDATE customers SET dropbox_access_token = $2 WHERE id = $1`, ['tampered', flipped]);
      const failing = ['tampered', 'unknown-key', 'wrong-key'];
      const before = await Promise.all(failing.map((id) => tokenColumns(db, id)));

      const result = await archiver(['rotate-secrets'], { ARCHIVER_SECRET_KEYS: ROTATING }, database.url);
      expect(result.code).toBe(1);
      expect(result.stdout).toMatch(/rotated 1, already current 0, plaintext sealed 0, failed 3/);
      expect(result.stderr).toMatch(
        /customer tampered: the stored dropbox_access_token cannot be opened: .*failed authentication/,
      );
      expect(result.stderr).toMatch(
        /customer wrong-key: the stored dropbox_refresh_token cannot be opened: .*failed authentication/,
      );
      expect(result.stderr).toMatch(
        /customer unknown-key: the stored dropbox_access_token cannot be opened: sealed with key id gone/,
      );
      expect(result.stderr).toMatch(
        /3 customers' tokens cannot be opened and were left as they were: tampered, unknown-key, wrong-key/,
      );
      expect(result.stderr).not.toMatch(/^\s+at /m);
      for (const secret of [...Object.values(tokens), ...keyMaterial, sealed])
        expect(result.stdout + result.stderr).not.toContain(secret);
      expect(await Promise.all(failing.map((id) => tokenColumns(db, id)))).toEqual(before);
      expect(await loadTokens(db, newKeyOnly(), 'fine')).toMatchObject({ accessToken: tokens.fine });

      // An upload for such a customer pauses it as needs-reauth, with the reason and without the token.
      const adapter = new CustomerTokens({ db, keyring: parseKeyring(ROTATING, 'rotating') });
      const failure = await adapter.accessToken('unknown-key').catch((err: unknown) => err);
      expect(failure).toMatchObject({
        failure: { type: 'AuthRevoked', message: expect.stringMatching(/customer unknown-key: .*key id gone/) },
      });
      expect((failure as Error).message).not.toContain(tokens.unknown);
    } finally {
      await database.close();
    }
  });

  it('customers add, reconnect and rotate-secrets refuse to run without a keyring, naming ARCHIVER_SECRET_KEYS, and change nothing', async () => {
    const before = await dump(stack.database.db);
    const noKeys = { ARCHIVER_SECRET_KEYS: '' };
    for (const args of [
      ['customers', 'add', uniqueName('nokey'), '--name', 'No key', '--access-token', 'tok-never-stored'],
      ['reconnect', plain, '--access-token', 'tok-never-stored'],
      ['rotate-secrets'],
    ]) {
      const result = await archiver(args, noKeys);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(/ARCHIVER_SECRET_KEYS is not set/);
      expect(result.stderr).not.toContain('tok-never-stored');
    }
    const malformed = await archiver(['rotate-secrets'], { ARCHIVER_SECRET_KEYS: 'k1:not-a-key' });
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toMatch(/ARCHIVER_SECRET_KEYS, entry 1 \(key id k1\)/);
    expect(await dump(stack.database.db)).toBe(before);
  });
});
