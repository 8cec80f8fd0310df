import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import type { UploadOutcome, UploadRequest } from '../../activities/types.js';
import { createDropboxClient } from '../../activities/dropbox/client.js';
import { dropboxContentHash } from '../../activities/dropbox/content-hash.js';
import { startDropboxEmulator, type DropboxEmulator } from 'dropbox-emulator';
import { startMediaServer, syntheticContent, type MediaServer } from '../../dev/media-server.js';
import { remotePathFor } from '../../activities/paths.js';
import { expectedContent, insertItems } from '../support/items.js';
import { freshDatabase, uniqueName, type TestDatabase } from '../support/stack.js';
import { testKeyring } from '../support/secret-keys.js';

/** Upload sessions and batch commits, activity by activity, on Postgres and the emulator. */
const MIB = 1024 * 1024;
let database: TestDatabase;
let emulator: DropboxEmulator;
let media: MediaServer;
let activities: ReturnType<typeof createActivities>;

beforeAll(async () => {
  [database, emulator, media] = await Promise.all([freshDatabase(), startDropboxEmulator(), startMediaServer()]);
  // Small limits so a 10 MiB item exercises the large-file path: 3 appends of 4 MiB.
  activities = createActivities({
    db: database.db,
    keyring: testKeyring(),
    dropboxApiBase: emulator.url,
    singleUploadLimit: 2 * MIB,
    chunkSize: 4 * MIB,
  });
});
afterAll(async () => {
  await Promise.allSettled([database?.close(), emulator?.stop(), media?.stop()]);
});

const run = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> =>
  new MockActivityEnvironment().run(fn, ...args);

function customerWithAccount(): { customer: string; token: string; accountId: string } {
  const token = uniqueName('tok');
  return { customer: uniqueName('c'), token, accountId: emulator.addAccount({ token }) };
}

async function row(id: string) {
  const [r] = await database.db.query<{
    state: string;
    remote_path: string;
    content_hash: string;
    metadata: { media: string; bytes: number };
    kind: 'call_recording';
  }>('SELECT * FROM archive_items WHERE id = $1', [id]);
  return r;
}

describe('large items', () => {
  it('stream through an upload session in chunks, finished at the item path with the right hash', async () => {
    const { customer, token, accountId } = customerWithAccount();
    const [id] = await insertItems(database.db, customer, token, media.url, 1, {
      kind: 'call_recording',
      bytes: 10 * MIB + 123,
    });
    const batch = await run(activities.fetchBatch, customer, 1);
    const outcome = await run(activities.uploadItem, {
      customerId: customer,
      itemId: id as string,
      leaseToken: batch.leaseToken,
    });
    expect(outcome).toMatchObject({ status: 'archived', bytes: 10 * MIB + 123 });
    const r = await row(id as string);
    const hash = dropboxContentHash(expectedContent(r?.metadata ?? { media: '', bytes: 0 }, 'call_recording'));
    expect(r).toMatchObject({ state: 'archived', content_hash: hash });
    const [session] = emulator.sessions(accountId);
    expect(session).toMatchObject({
      state: 'committed',
      offset: 10 * MIB + 123,
      bytesReceived: 10 * MIB + 123,
      path: r?.remote_path,
    });
    expect(session?.requests).toBe(4); // start, two appends, finish
    expect(
      emulator
        .fileContent(accountId, r?.remote_path ?? '')
        ?.equals(expectedContent(r?.metadata ?? { media: '', bytes: 0 }, 'call_recording')),
    ).toBe(true);
  });

  it('resume from where Dropbox is, not from a stale heartbeat, without re-sending committed bytes', async () => {
    const { customer, token, accountId } = customerWithAccount();
    const size = 12 * MIB;
    const [id] = await insertItems(database.db, customer, token, media.url, 1, { kind: 'call_recording', bytes: size });
    const r = await row(id as string);
    // A previous attempt got 8 MiB into a session but heartbeated only the first 4 MiB.
    const content = syntheticContent(r?.metadata.media ?? '', size);
    const dropbox = createDropboxClient({ accessToken: token, apiBase: emulator.url });
    const started = await dropbox.filesUploadSessionStart({ contents: content.subarray(0, 4 * MIB) });
    const sessionId = started.result.session_id;
    await dropbox.filesUploadSessionAppendV2({
      cursor: { session_id: sessionId, offset: 4 * MIB },
      contents: content.subarray(4 * MIB, 8 * MIB),
    });
    const batch = await run(activities.fetchBatch, customer, 1);
    const retry = new MockActivityEnvironment({ attempt: 2, heartbeatDetails: { sessionId, offset: 4 * MIB } });
    const outcome = await retry.run<[UploadRequest], UploadOutcome, typeof activities.uploadItem>(
      activities.uploadItem,
      { customerId: customer, itemId: id as string, leaseToken: batch.leaseToken },
    );
    expect(outcome.status).toBe('archived');
    expect(emulator.session(sessionId)).toMatchObject({ state: 'committed', offset: size, bytesReceived: size });
    expect(emulator.sessions(accountId)).toHaveLength(1);
    expect((await row(id as string))?.content_hash).toBe(dropboxContentHash(content));
  });
});

describe('batch commit', () => {
  it('stages items in closed sessions and commits them with one finish_batch_v2', async () => {
    const { customer, token, accountId } = customerWithAccount();
    const ids = await insertItems(database.db, customer, token, media.url, 5, { bytes: 700 });
    const batch = await run(activities.fetchBatch, customer, 5);
    const staged = [];
    for (const itemId of ids) {
      const done = await run(activities.stageItem, { customerId: customer, itemId, leaseToken: batch.leaseToken });
      expect(done.status).toBe('staged');
      if (done.status === 'staged') staged.push(done.staged);
    }
    // Staging makes nothing visible in Dropbox.
    expect(emulator.files(accountId)).toHaveLength(0);
    const outcome = await run(activities.commitSessions, customer, batch.leaseToken, staged);
    expect(outcome).toMatchObject({ archived: ids, retry: [], restage: [], rejected: [], storageFull: false });
    expect(emulator.stats().accounts[accountId]?.requests['/2/files/upload_session/finish_batch_v2 200']).toBe(1);
    expect(emulator.files(accountId)).toHaveLength(5);
    for (const id of ids) expect((await row(id))?.state).toBe('archived');

    // Committing the same sessions again (a retried activity) finds the files in place.
    await database.db.query(
      `UPDATE archive_items SET state = 'leased', lease_token = $2, lease_expires_at = now() + interval '1 minute' WHERE id = ANY($1)`,
      [ids, batch.leaseToken],
    );
    const again = await run(activities.commitSessions, customer, batch.leaseToken, staged);
    expect(again.archived).toEqual(ids);
    expect(emulator.files(accountId).every((f) => f.writes === 1)).toBe(true);
  });

  it('rejects only the entries whose path already holds other content', async () => {
    const { customer, token } = customerWithAccount();
    const ids = await insertItems(database.db, customer, token, media.url, 2, { bytes: 500 });
    const batch = await run(activities.fetchBatch, customer, 2);
    const staged = [];
    for (const itemId of ids) {
      const done = await run(activities.stageItem, { customerId: customer, itemId, leaseToken: batch.leaseToken });
      if (done.status === 'staged') staged.push(done.staged);
    }
    // Someone else put different bytes where the first item belongs.
    const [subject] = await database.db.query<{
      id: string;
      kind: 'voicemail';
      occurred_at: Date;
      metadata: Record<string, unknown>;
    }>('SELECT id, kind, occurred_at, metadata FROM archive_items WHERE id = $1', [ids[0]]);
    const path = remotePathFor({
      id: String(subject?.id),
      kind: 'voicemail',
      occurredAt: subject?.occurred_at ?? new Date(),
      metadata: subject?.metadata ?? {},
      folderRoot: '/Archiver',
    });
    await createDropboxClient({ accessToken: token, apiBase: emulator.url }).filesUpload({
      path,
      contents: Buffer.from('not the recording'),
    });
    const outcome = await run(activities.commitSessions, customer, batch.leaseToken, staged);
    expect(outcome.rejected).toEqual([ids[0]]);
    expect(outcome.archived).toEqual([ids[1]]);
    expect((await row(ids[0] as string))?.state).toBe('failed');
  });
});
