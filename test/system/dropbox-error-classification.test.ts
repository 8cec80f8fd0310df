import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDropboxClient } from '../../activities/dropbox/client.js';
import { classifyDropboxError, DEFAULT_RETRY_AFTER_MS } from '../../activities/dropbox/errors.js';
import { toApplicationFailure } from '../../activities/failure.js';
import { CustomerTokens } from '../../activities/dropbox/tokens.js';
import { upsertCustomer } from '../../db/customers.js';
import { testKeyring } from '../support/secret-keys.js';
import { startDropboxEmulator, type DropboxEmulator } from 'dropbox-emulator';
import { freshDatabase, uniqueName, type TestDatabase } from '../support/stack.js';

/**
 * Every way Dropbox fails, provoked for real on the emulator through the real SDK, and the
 * taxonomy type the adapter gives it.
 */
let emulator: DropboxEmulator;
let database: TestDatabase;
const APP = { key: 'classify-app', secret: 'classify-secret' };

beforeAll(async () => {
  [emulator, database] = await Promise.all([startDropboxEmulator({ apps: [APP], seed: 7 }), freshDatabase()]);
});
afterAll(async () => {
  await Promise.allSettled([emulator?.stop(), database?.close()]);
});

function newAccount(init: { scopes?: string[] } = {}): { token: string; accountId: string } {
  const token = uniqueName('tok');
  const accountId = emulator.addAccount({ token, ...init });
  return { token, accountId };
}

async function failureOf(promise: Promise<unknown>) {
  const err = await promise.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (e: unknown) => e,
  );
  return classifyDropboxError(err);
}

function upload(
  token: string,
  path = `/c/${uniqueName('f')}.bin`,
  contents: Uint8Array = Buffer.from('hello'),
  extra: Record<string, unknown> = {},
) {
  return createDropboxClient({ accessToken: token, apiBase: emulator.url }).filesUpload({
    path,
    contents,
    mode: { '.tag': 'add' },
    ...extra,
  });
}

describe('classifyDropboxError against the emulator', () => {
  it('429 too_many_requests (JSON) → RateLimited after Retry-After', async () => {
    const { token, accountId } = newAccount();
    emulator.queueFaults(accountId, [{ route: 'files/upload', fault: 'too_many_requests', retryAfter: 3 }]);
    expect(await failureOf(upload(token))).toMatchObject({ type: 'RateLimited', retryAfterMs: 3000 });
  });

  it('429 in plain text → RateLimited', async () => {
    const { token, accountId } = newAccount();
    emulator.queueFaults(accountId, [{ route: 'files/upload', fault: 'too_many_requests_text', retryAfter: 2 }]);
    const failure = await failureOf(upload(token));
    expect(failure).toMatchObject({ type: 'RateLimited', retryAfterMs: 2000 });
    expect(toApplicationFailure(failure)).toMatchObject({
      type: 'RateLimited',
      nextRetryDelay: 2000,
      nonRetryable: false,
    });
  });

  it('429 without Retry-After or retry_after → RateLimited with the default backoff', async () => {
    const { token, accountId } = newAccount();
    emulator.configureAccount(accountId, { tooManyRequestsShare: 1, noRetryAfterShare: 1 });
    const failure = await failureOf(upload(token));
    expect(failure).toMatchObject({ type: 'RateLimited', retryAfterMs: DEFAULT_RETRY_AFTER_MS });
    // Temporal waits exactly that long before the retry.
    expect(toApplicationFailure(failure).nextRetryDelay).toBe(DEFAULT_RETRY_AFTER_MS);
  });

  it('429 too_many_write_operations → WriteContention', async () => {
    const { token, accountId } = newAccount();
    emulator.queueFaults(accountId, [{ route: 'files/upload', fault: 'too_many_write_operations' }]);
    expect(await failureOf(upload(token))).toMatchObject({ type: 'WriteContention', retryAfterMs: 1000 });
  });

  it('409 too_many_write_operations while another commit holds the account → WriteContention', async () => {
    const { token, accountId } = newAccount();
    emulator.configureAccount(accountId, { writeContention: '409', commitLatencyMs: 300 });
    const results = await Promise.allSettled([upload(token), upload(token)]);
    const rejected = results.find((r) => r.status === 'rejected');
    expect(rejected && classifyDropboxError(rejected.reason)).toMatchObject({ type: 'WriteContention' });
  });

  it.each([500, 503, 504] as const)('%i → Transient', async (status) => {
    const { token, accountId } = newAccount();
    emulator.queueFaults(accountId, [{ route: 'files/upload', fault: status }]);
    expect(await failureOf(upload(token))).toMatchObject({ type: 'Transient' });
  });

  it('a reset connection → Transient', async () => {
    const { token, accountId } = newAccount();
    emulator.queueFaults(accountId, [{ route: 'files/upload', fault: 'reset' }]);
    expect(await failureOf(upload(token))).toMatchObject({
      type: 'Transient',
      message: expect.stringContaining('network error'),
    });
  });

  it('401 expired_access_token → AuthExpired', async () => {
    const { token, accountId } = newAccount();
    emulator.expireAccessTokens(accountId);
    expect(await failureOf(upload(token))).toMatchObject({ type: 'AuthExpired' });
  });

  it('401 invalid_access_token → AuthRevoked', async () => {
    expect(await failureOf(upload('never-issued'))).toMatchObject({ type: 'AuthRevoked' });
  });

  it('401 missing_scope → AuthRevoked (the customer must grant files.content.write)', async () => {
    const { token } = newAccount({ scopes: ['files.metadata.read'] });
    expect(await failureOf(upload(token))).toMatchObject({
      type: 'AuthRevoked',
      message: expect.stringContaining('missing_scope'),
    });
  });

  it('409 path/insufficient_space → StorageFull', async () => {
    const { token, accountId } = newAccount();
    emulator.configureAccount(accountId, { quotaBytes: 3 });
    expect(await failureOf(upload(token))).toMatchObject({ type: 'StorageFull' });
  });

  it('403 invalid_account_type/feature (the Data Transport quota) → QuotaExceeded, not retried, on every upload route', async () => {
    const { token, accountId } = newAccount();
    const dbx = createDropboxClient({ accessToken: token, apiBase: emulator.url });
    const session = (await dbx.filesUploadSessionStart({ contents: Buffer.from('abc'), close: true })).result;
    emulator.configureAccount(accountId, { dataTransportExceeded: true });
    const failure = await failureOf(upload(token));
    expect(failure).toMatchObject({
      type: 'QuotaExceeded',
      message: expect.stringContaining('403 invalid_account_type/feature'),
    });
    expect(toApplicationFailure(failure)).toMatchObject({ type: 'QuotaExceeded', nonRetryable: true });
    const cursor = { session_id: session.session_id, offset: 3 };
    const others = [
      () => dbx.filesUploadSessionStart({ contents: Buffer.from('x') }),
      () => dbx.filesUploadSessionFinish({ cursor, commit: { path: `/c/${uniqueName('f')}.bin` } }),
      () =>
        dbx.filesUploadSessionFinishBatchV2({ entries: [{ cursor, commit: { path: `/c/${uniqueName('f')}.bin` } }] }),
    ];
    for (const call of others) expect(await failureOf(call())).toMatchObject({ type: 'QuotaExceeded' });
  });

  it('422 invalid_root or no_permission (a stale Dropbox-API-Path-Root) → Transient, never an item failure', async () => {
    const { token } = newAccount();
    const withRoot = (root: unknown) =>
      createDropboxClient({ accessToken: token, apiBase: emulator.url, pathRoot: JSON.stringify(root) }).filesUpload({
        path: `/c/${uniqueName('f')}.bin`,
        contents: Buffer.from('x'),
      });
    expect(await failureOf(withRoot({ '.tag': 'root', root: '123' }))).toMatchObject({
      type: 'Transient',
      message: expect.stringContaining('422 invalid_root'),
    });
    expect(await failureOf(withRoot({ '.tag': 'namespace_id', namespace_id: '123' }))).toMatchObject({
      type: 'Transient',
      message: expect.stringContaining('422 no_permission'),
    });
  });

  it('409 conflict, malformed_path, disallowed_name → ItemRejected', async () => {
    const { token } = newAccount();
    await upload(token, '/c/taken.bin', Buffer.from('one'));
    expect(await failureOf(upload(token, '/c/taken.bin', Buffer.from('two')))).toMatchObject({
      type: 'ItemRejected',
      message: expect.stringContaining('conflict'),
    });
    expect(await failureOf(upload(token, `/c/${'x'.repeat(300)}.bin`))).toMatchObject({
      type: 'ItemRejected',
      message: expect.stringContaining('malformed_path'),
    });
    expect(await failureOf(upload(token, '/c/desktop.ini'))).toMatchObject({
      type: 'ItemRejected',
      message: expect.stringContaining('disallowed_name'),
    });
  });

  it('409 content_hash_mismatch → Transient (corrupted in transit: send again)', async () => {
    const { token } = newAccount();
    expect(
      await failureOf(upload(token, undefined, Buffer.from('abc'), { content_hash: 'a'.repeat(64) })),
    ).toMatchObject({ type: 'Transient' });
  });

  it('400 plain-text request errors → ItemRejected', async () => {
    const { token } = newAccount();
    expect(await failureOf(upload(token, 'no-leading-slash'))).toMatchObject({
      type: 'ItemRejected',
      message: expect.stringContaining('400'),
    });
  });

  it('a refresh token Dropbox no longer honours → AuthRevoked, without the token in the message', async () => {
    const customer = uniqueName('grant');
    const refreshToken = uniqueName('rt');
    const accountId = emulator.addAccount({ refreshToken, appKey: APP.key });
    await upsertCustomer(database.db, testKeyring(), { id: customer, name: customer, refreshToken });
    const tokens = new CustomerTokens({ db: database.db, keyring: testKeyring(), app: APP, apiBase: emulator.url });
    const token = await tokens.accessToken(customer);
    expect(token).toMatch(/^sl\./);
    emulator.revokeTokens(accountId);
    const failure = await failureOf(tokens.refresh(customer, token));
    expect(failure).toMatchObject({ type: 'AuthRevoked', message: expect.stringContaining('invalid_grant') });
    expect(failure.message).not.toContain(refreshToken);
    expect(failure.message).not.toContain(APP.secret);
  });
});
