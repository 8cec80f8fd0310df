import { randomBytes } from 'node:crypto';
import { bytesUpload, DropboxFileUploader, type Dropbox } from 'dropbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contentHash } from '../src/content-hash.js';
import { startDropboxEmulator, type DropboxEmulator } from '../src/index.js';
import { createDropboxClient, rawCall, sdkFailure, withTwoAccounts } from './support/calls.js';

const MiB = 1024 * 1024;
const ALICE = { token: 'sl.alice-sessions', accountId: 'dbid:alice' };
const BOB = { token: 'sl.bob-sessions', accountId: 'dbid:bob' };
const SUMMARY = (prefix: string): RegExp => new RegExp(`^${prefix.replace(/\//g, '\\/')}\\/\\.{0,3}$`);

describe('upload sessions through the dropbox SDK', () => {
  let emu: DropboxEmulator;
  let alice: Dropbox;
  let bob: Dropbox;

  withTwoAccounts(ALICE, BOB, (two) => ({ emu, alice, bob } = two));

  it('start → append_v2 → finish builds the file; download returns its bytes', async () => {
    // Chunk sizes that don't line up with 4 MiB blocks, so the session hash must span calls.
    const content = randomBytes(5 * MiB + 777);
    const [a, b, c] = [
      content.subarray(0, 3 * MiB + 5),
      content.subarray(3 * MiB + 5, 5 * MiB),
      content.subarray(5 * MiB),
    ];
    const started = await alice.filesUploadSessionStart({ contents: a });
    expect(started.status).toBe(200);
    expect(Object.keys(started.result)).toEqual(['session_id']);
    const sessionId = started.result.session_id;
    expect(sessionId).toMatch(/^pid_upload_session:[A-Za-z0-9_-]{40}$/);

    const appended = await rawCall(emu.url, 'files/upload_session/append_v2', {
      token: ALICE.token,
      arg: { cursor: { session_id: sessionId, offset: a.length } },
      body: b,
    });
    expect(appended.status).toBe(200);
    expect(appended.headers.get('content-type')).toBe('application/json');
    expect(appended.text).toBe('null');

    const done = await alice.filesUploadSessionFinish({
      cursor: { session_id: sessionId, offset: a.length + b.length },
      commit: { path: '/Big/Rec.wav', client_modified: '2026-03-04T05:06:07Z' },
      contents: c,
    });
    expect(done.result).not.toHaveProperty('.tag');
    expect(done.result).toMatchObject({
      name: 'Rec.wav',
      path_display: '/Big/Rec.wav',
      size: content.length,
      content_hash: contentHash(content),
      client_modified: '2026-03-04T05:06:07Z',
      is_downloadable: true,
    });

    const down = await alice.filesDownload({ path: '/big/REC.WAV' });
    expect(down.headers.get('content-type')).toBe('application/octet-stream');
    expect(JSON.parse(down.headers.get('dropbox-api-result') as string)).toEqual(done.result);
    expect(Buffer.compare((down.result as unknown as { fileBinary: Buffer }).fileBinary, content)).toBe(0);
    expect(emu.session(sessionId)).toEqual({
      sessionId,
      accountId: ALICE.accountId,
      type: 'sequential',
      state: 'committed',
      offset: content.length,
      bytesReceived: content.length,
      requests: 3,
      createdAt: expect.stringMatching(/Z$/),
      path: '/Big/Rec.wav',
    });
    expect(emu.fileContent(ALICE.accountId, '/Big/Rec.wav')?.equals(content)).toBe(true);
  });

  it('append_v2 errors are a flat union: not_found, incorrect_offset, closed, content_hash_mismatch', async () => {
    const unknown = await sdkFailure(
      alice.filesUploadSessionAppendV2({
        cursor: { session_id: 'pid_upload_session:nope', offset: 0 },
        contents: Buffer.from('x'),
      }),
    );
    expect(unknown.status).toBe(409);
    expect(unknown.error).toEqual({
      error_summary: expect.stringMatching(SUMMARY('not_found')),
      error: { '.tag': 'not_found' },
    });

    const id = (await alice.filesUploadSessionStart({ contents: Buffer.from('12345') })).result.session_id;
    // Another account's session id is unknown to this account.
    expect(
      (
        await sdkFailure(
          bob.filesUploadSessionAppendV2({ cursor: { session_id: id, offset: 5 }, contents: Buffer.from('x') }),
        )
      ).error.error,
    ).toEqual({ '.tag': 'not_found' });

    const wrong = await sdkFailure(
      alice.filesUploadSessionAppendV2({ cursor: { session_id: id, offset: 3 }, contents: Buffer.from('678') }),
    );
    expect(wrong.error).toEqual({
      error_summary: expect.stringMatching(SUMMARY('incorrect_offset')),
      error: { '.tag': 'incorrect_offset', correct_offset: 5 },
    });

    // content_hash covers this call's bytes, not the file so far.
    const chunk = Buffer.from('678');
    const mismatch = await sdkFailure(
      alice.filesUploadSessionAppendV2({
        cursor: { session_id: id, offset: 5 },
        contents: chunk,
        content_hash: contentHash(Buffer.from('12345678')),
      }),
    );
    expect(mismatch.error.error).toEqual({ '.tag': 'content_hash_mismatch' });
    await alice.filesUploadSessionAppendV2({
      cursor: { session_id: id, offset: 5 },
      contents: chunk,
      content_hash: contentHash(chunk),
      close: true,
    });

    const closed = await sdkFailure(
      alice.filesUploadSessionAppendV2({ cursor: { session_id: id, offset: 8 }, contents: Buffer.from('9') }),
    );
    expect(closed.error.error).toEqual({ '.tag': 'closed' });
    expect(emu.session(id)).toMatchObject({ state: 'closed', offset: 8, bytesReceived: 5 + 3 + 3 + 3 + 1 });
  });

  it('finish errors nest lookup errors under lookup_failed and write errors under path', async () => {
    const id = (await alice.filesUploadSessionStart({ contents: Buffer.from('abc') })).result.session_id;
    const off = await sdkFailure(
      alice.filesUploadSessionFinish({ cursor: { session_id: id, offset: 1 }, commit: { path: '/f/a.txt' } }),
    );
    expect(off.status).toBe(409);
    expect(off.error).toEqual({
      error_summary: expect.stringMatching(SUMMARY('lookup_failed/incorrect_offset')),
      error: { '.tag': 'lookup_failed', lookup_failed: { '.tag': 'incorrect_offset', correct_offset: 3 } },
    });
    const missing = await sdkFailure(
      alice.filesUploadSessionFinish({
        cursor: { session_id: 'pid_upload_session:gone', offset: 0 },
        commit: { path: '/f/a.txt' },
      }),
    );
    expect(missing.error.error).toEqual({ '.tag': 'lookup_failed', lookup_failed: { '.tag': 'not_found' } });

    await alice.filesUpload({ path: '/f/taken.txt', contents: Buffer.from('other') });
    const conflict = await sdkFailure(
      alice.filesUploadSessionFinish({
        cursor: { session_id: id, offset: 3 },
        commit: { path: '/f/taken.txt' },
        contents: Buffer.from('def'),
      }),
    );
    expect(conflict.error).toEqual({
      error_summary: expect.stringMatching(SUMMARY('path/conflict/file')),
      error: { '.tag': 'path', path: { '.tag': 'conflict', conflict: { '.tag': 'file' } } },
    });
    // The last chunk was appended anyway; retry with an empty body at the new offset.
    const again = await sdkFailure(
      alice.filesUploadSessionFinish({
        cursor: { session_id: id, offset: 3 },
        commit: { path: '/f/ok.txt' },
        contents: Buffer.from('def'),
      }),
    );
    expect(again.error.error).toEqual({
      '.tag': 'lookup_failed',
      lookup_failed: { '.tag': 'incorrect_offset', correct_offset: 6 },
    });
    const ok = await alice.filesUploadSessionFinish({
      cursor: { session_id: id, offset: 6 },
      commit: { path: '/f/ok.txt' },
    });
    expect(ok.result).toMatchObject({ size: 6, content_hash: contentHash(Buffer.from('abcdef')) });

    // A committed session is gone for finish and closed for append.
    expect(
      (
        await sdkFailure(
          alice.filesUploadSessionFinish({ cursor: { session_id: id, offset: 6 }, commit: { path: '/f/x.txt' } }),
        )
      ).error.error,
    ).toEqual({ '.tag': 'lookup_failed', lookup_failed: { '.tag': 'not_found' } });
    expect(
      (
        await sdkFailure(
          alice.filesUploadSessionAppendV2({ cursor: { session_id: id, offset: 6 }, contents: Buffer.from('g') }),
        )
      ).error.error,
    ).toEqual({ '.tag': 'closed' });
  });

  it('finish checks content_hash, disallowed names, long components and data on a closed session', async () => {
    const start = async (data: string, close = false): Promise<string> =>
      (await alice.filesUploadSessionStart({ contents: Buffer.from(data), close })).result.session_id;
    const id = await start('hello');
    const bad = await sdkFailure(
      alice.filesUploadSessionFinish({
        cursor: { session_id: id, offset: 5 },
        commit: { path: '/h.txt' },
        contents: Buffer.from('!'),
        content_hash: contentHash(Buffer.from('hello!')),
      }),
    );
    expect(bad.error.error).toEqual({ '.tag': 'content_hash_mismatch' });
    expect(emu.session(id)?.offset).toBe(5);

    const ini = await sdkFailure(
      alice.filesUploadSessionFinish({ cursor: { session_id: id, offset: 5 }, commit: { path: '/sub/Desktop.INI' } }),
    );
    expect(ini.error.error).toEqual({ '.tag': 'path', path: { '.tag': 'disallowed_name' } });
    const long = await sdkFailure(
      alice.filesUploadSessionFinish({
        cursor: { session_id: id, offset: 5 },
        commit: { path: `/${'n'.repeat(256)}.txt` },
      }),
    );
    expect(long.error.error).toEqual({ '.tag': 'path', path: { '.tag': 'malformed_path', malformed_path: null } });

    const closedId = await start('abc', true);
    const extra = await sdkFailure(
      alice.filesUploadSessionFinish({
        cursor: { session_id: closedId, offset: 3 },
        commit: { path: '/c.txt' },
        contents: Buffer.from('d'),
      }),
    );
    expect(extra.error.error).toEqual({ '.tag': 'lookup_failed', lookup_failed: { '.tag': 'closed' } });
    expect(
      (
        await alice.filesUploadSessionFinish({
          cursor: { session_id: closedId, offset: 3 },
          commit: { path: '/c.txt' },
        })
      ).result.size,
    ).toBe(3);
  });

  it('concurrent sessions take 4 MiB-aligned pieces in any order and hash them in offset order', async () => {
    const content = randomBytes(8 * MiB + 1000);
    const withData = await sdkFailure(
      alice.filesUploadSessionStart({ session_type: { '.tag': 'concurrent' }, contents: Buffer.from('x') }),
    );
    expect(withData.error.error).toEqual({ '.tag': 'concurrent_session_data_not_allowed' });
    const withClose = await sdkFailure(
      alice.filesUploadSessionStart({ session_type: { '.tag': 'concurrent' }, close: true }),
    );
    expect(withClose.error.error).toEqual({ '.tag': 'concurrent_session_close_not_allowed' });

    const id = (await alice.filesUploadSessionStart({ session_type: { '.tag': 'concurrent' } })).result.session_id;
    const append = (offset: number, bytes: Buffer, close = false) =>
      alice.filesUploadSessionAppendV2({ cursor: { session_id: id, offset }, contents: bytes, close });
    expect((await sdkFailure(append(1, content.subarray(0, 4 * MiB)))).error.error).toEqual({
      '.tag': 'concurrent_session_invalid_offset',
    });
    expect((await sdkFailure(append(0, content.subarray(0, 5)))).error.error).toEqual({
      '.tag': 'concurrent_session_invalid_data_size',
    });

    const finishAt = (offset: number, contents?: Buffer) =>
      alice.filesUploadSessionFinish({
        cursor: { session_id: id, offset },
        commit: { path: '/conc.bin' },
        ...(contents ? { contents } : {}),
      });
    expect((await sdkFailure(finishAt(0))).error.error).toEqual({ '.tag': 'concurrent_session_not_closed' });
    await append(8 * MiB, content.subarray(8 * MiB), true);
    await append(4 * MiB, content.subarray(4 * MiB, 8 * MiB));
    expect((await sdkFailure(finishAt(content.length))).error.error).toEqual({
      '.tag': 'concurrent_session_missing_data',
    });
    await append(0, content.subarray(0, 4 * MiB));
    expect((await sdkFailure(finishAt(content.length, Buffer.from('x')))).error.error).toEqual({
      '.tag': 'concurrent_session_data_not_allowed',
    });
    expect((await sdkFailure(finishAt(5))).error.error).toEqual({
      '.tag': 'lookup_failed',
      lookup_failed: { '.tag': 'incorrect_offset', correct_offset: content.length },
    });
    const meta = (await finishAt(content.length)).result;
    expect(meta).toMatchObject({ size: content.length, content_hash: contentHash(content) });
    expect(emu.fileContent(ALICE.accountId, '/conc.bin')?.equals(content)).toBe(true);
    expect(emu.session(id)).toMatchObject({ type: 'concurrent', state: 'committed', offset: content.length });
  });

  it("the SDK's own DropboxFileUploader works sequentially and in parallel", async () => {
    const content = randomBytes(9 * MiB + 3);
    const seq = await new DropboxFileUploader(alice, { chunkSize: 4 * MiB }).upload(bytesUpload(content), {
      path: '/sdk/seq.bin',
    });
    expect(seq.metadata).toMatchObject({ size: content.length, content_hash: contentHash(content) });
    const par = await new DropboxFileUploader(alice, { chunkSize: 4 * MiB, parallelUploads: 3 }).upload(
      bytesUpload(content),
      { path: '/sdk/par.bin' },
    );
    expect(par.metadata).toMatchObject({ size: content.length, content_hash: contentHash(content) });
    expect(
      emu
        .sessions(ALICE.accountId)
        .filter((s) => s.path?.startsWith('/sdk/'))
        .map((s) => s.type)
        .sort(),
    ).toEqual(['concurrent', 'sequential']);
  });

  it('start_batch opens 1..1000 sessions', async () => {
    const res = await alice.filesUploadSessionStartBatch({ num_sessions: 3, session_type: { '.tag': 'sequential' } });
    expect(Object.keys(res.result)).toEqual(['session_ids']);
    expect(new Set(res.result.session_ids).size).toBe(3);
    for (const id of res.result.session_ids)
      expect(emu.session(id)).toMatchObject({ state: 'open', offset: 0, accountId: ALICE.accountId });
    const zero = await rawCall(emu.url, 'files/upload_session/start_batch', {
      token: ALICE.token,
      body: { num_sessions: 0 },
    });
    expect(zero.status).toBe(400);
    expect(zero.text).toBe(
      'Error in call to API function "files/upload_session/start_batch": request body: num_sessions: 0 is not within the range [1, 1000]',
    );
    expect(
      (await rawCall(emu.url, 'files/upload_session/start_batch', { token: ALICE.token, body: { num_sessions: 1001 } }))
        .status,
    ).toBe(400);
  });

  it('answers request-format problems with 400 text', async () => {
    const wrongType = await rawCall(emu.url, 'files/upload_session/start', {
      token: ALICE.token,
      arg: {},
      body: 'x',
      contentType: 'application/json',
    });
    expect(wrongType.status).toBe(400);
    expect(wrongType.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(wrongType.text).toBe(
      'Error in call to API function "files/upload_session/start": Bad HTTP "Content-Type" header: "application/json".  Expecting one of "application/octet-stream", "text/plain; charset=dropbox-cors-hack".',
    );
    const id = (await alice.filesUploadSessionStart({})).result.session_id;
    const pattern = await rawCall(emu.url, 'files/upload_session/finish', {
      token: ALICE.token,
      arg: { cursor: { session_id: id, offset: 0 }, commit: { path: 'x.txt' } },
    });
    expect(pattern.status).toBe(400);
    expect(pattern.text).toMatch(
      /^Error in call to API function "files\/upload_session\/finish": HTTP header "Dropbox-API-Arg": commit\.path: 'x\.txt' did not match pattern '.+'$/,
    );
    const noArg = await rawCall(emu.url, 'files/upload_session/append_v2', {
      token: ALICE.token,
      body: 'x',
      contentType: 'application/octet-stream',
    });
    expect(noArg.text).toBe(
      'Error in call to API function "files/upload_session/append_v2": Must provide HTTP header "Dropbox-API-Arg" or URL parameter "arg".',
    );
    const badType = await rawCall(emu.url, 'files/upload_session/start', {
      token: ALICE.token,
      arg: { session_type: 'parallel' },
    });
    expect(badType.status).toBe(400);
    expect(badType.text).toContain('session_type: unknown tag "parallel"');
  });

  it('files/upload refuses disallowed names (any case) and components over 255 characters with 409 path errors', async () => {
    for (const name of ['desktop.ini', 'Thumbs.db', '.DS_Store', 'Icon\r', '.dropbox', '.Dropbox.Attr']) {
      const e = await sdkFailure(alice.filesUpload({ path: `/names/${name}`, contents: Buffer.from('x') }));
      expect(e.status).toBe(409);
      expect(e.error).toEqual({
        error_summary: expect.stringMatching(SUMMARY('path/disallowed_name')),
        error: { '.tag': 'path', reason: { '.tag': 'disallowed_name' }, upload_session_id: expect.any(String) },
      });
    }
    expect((await alice.filesUpload({ path: '/names/desktop.ini.txt', contents: Buffer.from('x') })).status).toBe(200);
    const long = await sdkFailure(alice.filesUpload({ path: `/names/${'a'.repeat(256)}`, contents: Buffer.from('x') }));
    expect(long.error.error).toEqual({
      '.tag': 'path',
      reason: { '.tag': 'malformed_path', malformed_path: null },
      upload_session_id: expect.any(String),
    });
    expect((await alice.filesUpload({ path: `/names/${'a'.repeat(255)}`, contents: Buffer.from('x') })).status).toBe(
      200,
    );
  });

  it('download answers 409 path/not_found and path/not_file', async () => {
    const missing = await sdkFailure(alice.filesDownload({ path: '/nothing/here.bin' }));
    expect(missing.status).toBe(409);
    expect(missing.error).toEqual({
      error_summary: expect.stringMatching(SUMMARY('path/not_found')),
      error: { '.tag': 'path', path: { '.tag': 'not_found' } },
    });
    await alice.filesUpload({ path: '/dir/file.txt', contents: Buffer.from('0123456789') });
    expect((await sdkFailure(alice.filesDownload({ path: '/dir' }))).error.error).toEqual({
      '.tag': 'path',
      path: { '.tag': 'not_file' },
    });
    const ranged = await fetch(`${emu.url}/2/files/download`, {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${ALICE.token}`,
        'Dropbox-API-Arg': '{"path":"/dir/file.txt"}',
        Range: 'bytes=2-5',
      },
    });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get('content-range')).toBe('bytes 2-5/10');
    expect(await ranged.text()).toBe('2345');
  });
});

describe('upload session limits', () => {
  let emu: DropboxEmulator;
  let alice: Dropbox;

  beforeAll(async () => {
    // Tiny limits stand in for 150 MiB per request and 2^41 − 2^22 per file.
    emu = await startDropboxEmulator({
      accounts: [ALICE],
      maxRequestBytes: 16,
      maxFileBytes: 20,
      sessionTtlSeconds: 0.3,
    });
    alice = createDropboxClient({ accessToken: ALICE.token, apiBase: emu.url });
  });
  afterAll(() => emu.stop());

  it('answers bodies over maxRequestBytes with payload_too_large on every upload route', async () => {
    const big = Buffer.alloc(17, 1);
    expect((await sdkFailure(alice.filesUploadSessionStart({ contents: big }))).error.error).toEqual({
      '.tag': 'payload_too_large',
    });
    const id = (await alice.filesUploadSessionStart({ contents: Buffer.alloc(16) })).result.session_id;
    expect(
      (await sdkFailure(alice.filesUploadSessionAppendV2({ cursor: { session_id: id, offset: 16 }, contents: big })))
        .error.error,
    ).toEqual({ '.tag': 'payload_too_large' });
    expect(
      (
        await sdkFailure(
          alice.filesUploadSessionFinish({
            cursor: { session_id: id, offset: 16 },
            commit: { path: '/p.bin' },
            contents: big,
          }),
        )
      ).error.error,
    ).toEqual({ '.tag': 'payload_too_large' });
    const upload = await sdkFailure(alice.filesUpload({ path: '/u.bin', contents: big }));
    expect(upload.status).toBe(409);
    expect(upload.error).toEqual({
      error_summary: expect.stringMatching(SUMMARY('payload_too_large')),
      error: { '.tag': 'payload_too_large' },
    });
    expect((await alice.filesUpload({ path: '/u.bin', contents: Buffer.alloc(16) })).result.size).toBe(16);
  });

  it('answers appends past maxFileBytes with too_large', async () => {
    const id = (await alice.filesUploadSessionStart({ contents: Buffer.alloc(15) })).result.session_id;
    expect(
      (
        await sdkFailure(
          alice.filesUploadSessionAppendV2({ cursor: { session_id: id, offset: 15 }, contents: Buffer.alloc(6) }),
        )
      ).error.error,
    ).toEqual({ '.tag': 'too_large' });
    expect(
      (
        await sdkFailure(
          alice.filesUploadSessionFinish({
            cursor: { session_id: id, offset: 15 },
            commit: { path: '/t.bin' },
            contents: Buffer.alloc(6),
          }),
        )
      ).error.error,
    ).toEqual({ '.tag': 'lookup_failed', lookup_failed: { '.tag': 'too_large' } });
    await alice.filesUploadSessionAppendV2({ cursor: { session_id: id, offset: 15 }, contents: Buffer.alloc(5) });
  });

  it('expires sessions after sessionTtlSeconds', async () => {
    const id = (await alice.filesUploadSessionStart({ contents: Buffer.from('x') })).result.session_id;
    await new Promise((r) => setTimeout(r, 400));
    expect(
      (
        await sdkFailure(
          alice.filesUploadSessionAppendV2({ cursor: { session_id: id, offset: 1 }, contents: Buffer.from('y') }),
        )
      ).error.error,
    ).toEqual({ '.tag': 'not_found' });
    expect(
      (
        await sdkFailure(
          alice.filesUploadSessionFinish({ cursor: { session_id: id, offset: 1 }, commit: { path: '/late.txt' } }),
        )
      ).error.error,
    ).toEqual({ '.tag': 'lookup_failed', lookup_failed: { '.tag': 'not_found' } });
    expect(emu.session(id)?.state).toBe('expired');
  });
});
