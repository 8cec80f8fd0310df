import type { Dropbox, files } from 'dropbox';
import { describe, expect, it } from 'vitest';
import { contentHash } from '../src/content-hash.js';
import type { DropboxEmulator } from '../src/index.js';
import { rawCall, sdkFailure, withTwoAccounts } from './support/calls.js';

const ALICE = { token: 'sl.alice-batch', accountId: 'dbid:alice-batch' };
const BOB = { token: 'sl.bob-batch', accountId: 'dbid:bob-batch' };

describe('finish_batch_v2 and finish_batch', () => {
  let emu: DropboxEmulator;
  let alice: Dropbox;
  let bob: Dropbox;

  withTwoAccounts(ALICE, BOB, (two) => ({ emu, alice, bob } = two));

  /** A session holding `data`, closed unless asked otherwise. */
  async function session(data: string, close = true): Promise<string> {
    return (await alice.filesUploadSessionStart({ contents: Buffer.from(data), close })).result.session_id;
  }

  const entry = (id: string, offset: number, path: string): files.UploadSessionFinishArg => ({
    cursor: { session_id: id, offset },
    commit: { path },
  });

  it('commits closed sessions synchronously, one success or failure per entry', async () => {
    await alice.filesUpload({ path: '/b/taken.txt', contents: Buffer.from('old') });
    const concurrent = (await alice.filesUploadSessionStart({ session_type: { '.tag': 'concurrent' } })).result
      .session_id;
    const entries = [
      entry(await session('one'), 3, '/b/One.txt'),
      entry(await session('open', false), 4, '/b/open.txt'),
      entry(await session('off'), 1, '/b/off.txt'),
      entry('pid_upload_session:unknown', 0, '/b/unknown.txt'),
      entry(await session('new'), 3, '/b/taken.txt'),
      entry(concurrent, 0, '/b/conc.txt'),
    ];
    const raw = await rawCall(emu.url, 'files/upload_session/finish_batch_v2', {
      token: ALICE.token,
      body: { entries },
    });
    expect(raw.status).toBe(200);
    expect(Object.keys(raw.json as object)).toEqual(['entries']);
    const fileMeta: Record<string, unknown> = { ...(await alice.filesGetMetadata({ path: '/b/one.txt' })).result };
    delete fileMeta['.tag'];
    expect(raw.json.entries).toEqual([
      { '.tag': 'success', ...fileMeta },
      { '.tag': 'failure', failure: { '.tag': 'lookup_failed', lookup_failed: { '.tag': 'not_closed' } } },
      {
        '.tag': 'failure',
        failure: { '.tag': 'lookup_failed', lookup_failed: { '.tag': 'incorrect_offset', correct_offset: 3 } },
      },
      { '.tag': 'failure', failure: { '.tag': 'lookup_failed', lookup_failed: { '.tag': 'not_found' } } },
      { '.tag': 'failure', failure: { '.tag': 'path', path: { '.tag': 'conflict', conflict: { '.tag': 'file' } } } },
      { '.tag': 'failure', failure: { '.tag': 'concurrent_session_not_closed' } },
    ]);
    expect(fileMeta).toMatchObject({ name: 'One.txt', size: 3, content_hash: contentHash(Buffer.from('one')) });
    expect(emu.stats().accounts[ALICE.accountId]?.commits).toBeGreaterThanOrEqual(2);
  });

  it('works through the SDK and refuses more than 1000 entries with 400 text', async () => {
    const ids = (await alice.filesUploadSessionStartBatch({ num_sessions: 3 })).result.session_ids;
    for (const [i, id] of ids.entries())
      await alice.filesUploadSessionAppendV2({
        cursor: { session_id: id, offset: 0 },
        contents: Buffer.from(`file ${i}`),
        close: true,
      });
    const res = await alice.filesUploadSessionFinishBatchV2({
      entries: ids.map((id, i) => entry(id, 6, `/sdk/${i}.txt`)),
    });
    expect(res.result.entries.map((e) => e['.tag'])).toEqual(['success', 'success', 'success']);
    expect(
      emu
        .files(ALICE.accountId)
        .filter((f) => f.pathLower.startsWith('/sdk/'))
        .map((f) => f.size),
    ).toEqual([6, 6, 6]);

    const tooMany = await rawCall(emu.url, 'files/upload_session/finish_batch_v2', {
      token: ALICE.token,
      body: { entries: Array.from({ length: 1001 }, () => entry('x', 0, '/x')) },
    });
    expect(tooMany.status).toBe(400);
    expect(tooMany.text).toBe(
      'Error in call to API function "files/upload_session/finish_batch_v2": request body: entries: list has more than 1000 items',
    );
    const badPath = await rawCall(emu.url, 'files/upload_session/finish_batch_v2', {
      token: ALICE.token,
      body: { entries: [entry('x', 0, 'nope')] },
    });
    expect(badPath.status).toBe(400);
    expect(badPath.text).toMatch(/request body: entries\[0\]\.commit\.path: 'nope' did not match pattern/);
  });

  it('a session committed by one batch is not_found for the next', async () => {
    const id = await session('once');
    const first = await alice.filesUploadSessionFinishBatchV2({
      entries: [entry(id, 4, '/once.txt'), entry(id, 4, '/twice.txt')],
    });
    expect(first.result.entries.map((e) => e['.tag'])).toEqual(['success', 'failure']);
    const second = await alice.filesUploadSessionFinishBatchV2({ entries: [entry(id, 4, '/once-more.txt')] });
    expect(second.result.entries[0]).toEqual({
      '.tag': 'failure',
      failure: { '.tag': 'lookup_failed', lookup_failed: { '.tag': 'not_found' } },
    });
  });

  it('v1 finish_batch returns an async job that check reports in_progress, then complete', async () => {
    const ids = [await session('v1-a'), await session('v1-b')];
    const launch = await rawCall(emu.url, 'files/upload_session/finish_batch', {
      token: ALICE.token,
      body: { entries: ids.map((id, i) => entry(id, 4, `/v1/${i}.txt`)) },
    });
    expect(launch.status).toBe(200);
    expect(launch.json).toEqual({
      '.tag': 'async_job_id',
      async_job_id: expect.stringMatching(/^dbjid:[A-Za-z0-9_-]+$/),
    });
    const jobId: string = launch.json.async_job_id;

    expect((await alice.filesUploadSessionFinishBatchCheck({ async_job_id: jobId })).result).toEqual({
      '.tag': 'in_progress',
    });
    const done = (await alice.filesUploadSessionFinishBatchCheck({ async_job_id: jobId })).result;
    expect(done['.tag']).toBe('complete');
    const entries = (done as files.UploadSessionFinishBatchJobStatusComplete).entries;
    expect(
      entries.map((e) => [e['.tag'], (e as files.UploadSessionFinishBatchResultEntrySuccess).path_display]),
    ).toEqual([
      ['success', '/v1/0.txt'],
      ['success', '/v1/1.txt'],
    ]);

    const invalid = await sdkFailure(alice.filesUploadSessionFinishBatchCheck({ async_job_id: 'dbjid:nope' }));
    expect(invalid.status).toBe(409);
    expect(invalid.error).toEqual({
      error_summary: expect.stringMatching(/^invalid_async_job_id\/\.{0,3}$/),
      error: { '.tag': 'invalid_async_job_id' },
    });
    expect((await sdkFailure(bob.filesUploadSessionFinishBatchCheck({ async_job_id: jobId }))).error.error).toEqual({
      '.tag': 'invalid_async_job_id',
    });
  });

  it('v1 finish_batch through the SDK', async () => {
    const id = await session('sdk-v1');
    const launch = await alice.filesUploadSessionFinishBatch({ entries: [entry(id, 6, '/v1/sdk.txt')] });
    expect(launch.result['.tag']).toBe('async_job_id');
    const jobId = (launch.result as { async_job_id: string }).async_job_id;
    let status = (await alice.filesUploadSessionFinishBatchCheck({ async_job_id: jobId })).result;
    for (let i = 0; status['.tag'] === 'in_progress' && i < 20; i++)
      status = (await alice.filesUploadSessionFinishBatchCheck({ async_job_id: jobId })).result;
    expect(status['.tag']).toBe('complete');
    expect(emu.files(ALICE.accountId).some((f) => f.pathLower === '/v1/sdk.txt')).toBe(true);
  });
});
