import { randomBytes } from 'node:crypto';
import { DropboxResponseError, type Dropbox } from 'dropbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contentHash } from '../src/content-hash.js';
import { TokenBucketLimiter } from '../src/rate-limit.js';
import { createDropboxClient, withTwoAccounts } from './support/calls.js';
import { startDropboxEmulator, type DropboxEmulator } from '../src/index.js';

const ALICE = { token: 'sl.alice-token', accountId: 'dbid:alice' };
const BOB = { token: 'sl.bob-token', accountId: 'dbid:bob' };

/** The runtime shape of `DropboxResponseError.error` for JSON errors (the SDK's type says otherwise). */
interface ApiErrorBody {
  error_summary: string;
  error: Record<string, any>;
}

/** The rejection of an SDK call that must fail. */
async function failure(call: Promise<unknown>): Promise<DropboxResponseError<ApiErrorBody>> {
  try {
    await call;
  } catch (err) {
    expect(err).toBeInstanceOf(DropboxResponseError);
    return err as DropboxResponseError<ApiErrorBody>;
  }
  throw new Error('expected the call to fail, but it succeeded');
}

/** A content-upload request without the SDK, for shapes its types or its parsing would hide. */
function rawUpload(url: string, headers: Record<string, string>, body = 'x'): Promise<Response> {
  return fetch(`${url}/2/files/upload`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/octet-stream', ...headers },
    body,
  });
}

async function admin<T>(url: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
  const res = await fetch(
    `${url}/__admin/${path}`,
    body === undefined
      ? {}
      : {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify(body),
        },
  );
  return { status: res.status, json: (await res.json()) as T };
}

describe('Dropbox emulator through the dropbox SDK', () => {
  let emu: DropboxEmulator;
  let alice: Dropbox;
  let bob: Dropbox;

  withTwoAccounts(ALICE, BOB, (two) => ({ emu, alice, bob } = two));

  it('listens on a free 127.0.0.1 port', () => {
    expect(emu.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(Number(new URL(emu.url).port)).toBeGreaterThan(0);
  });

  it('upload returns FileMetadata without .tag, with the Dropbox content hash', async () => {
    // Larger than one 4 MiB block, so a wrong block split would change the hash.
    const content = randomBytes(5 * 1024 * 1024 + 123);
    const res = await alice.filesUpload({
      path: '/Calls/2026/Rec-01.WAV',
      contents: content,
      client_modified: '2026-01-02T03:04:05Z',
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('x-dropbox-request-id')).toMatch(/^[0-9a-f]{32}$/);
    const meta = res.result;
    expect(meta).not.toHaveProperty('.tag');
    expect(meta).toMatchObject({
      name: 'Rec-01.WAV',
      path_lower: '/calls/2026/rec-01.wav',
      path_display: '/Calls/2026/Rec-01.WAV',
      client_modified: '2026-01-02T03:04:05Z',
      size: content.length,
      is_downloadable: true,
      content_hash: contentHash(content),
    });
    expect(meta.id).toMatch(/^id:[A-Za-z0-9_-]{22}$/);
    expect(meta.rev).toMatch(/^[0-9a-f]{9,}$/);
    expect(meta.server_modified).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    expect(Math.abs(Date.parse(meta.server_modified) - Date.now())).toBeLessThan(60_000);
  });

  it('identical re-upload succeeds with the existing metadata and writes nothing', async () => {
    const content = Buffer.from('voicemail #1');
    const first = (await alice.filesUpload({ path: '/vm/one.txt', contents: content })).result;
    const written = emu.stats().filesWritten;
    const again = (await alice.filesUpload({ path: '/VM/ONE.txt', contents: content })).result;
    expect(again).toEqual(first);
    expect(emu.stats().filesWritten).toBe(written);
    expect(emu.files(ALICE.accountId).find((f) => f.pathLower === '/vm/one.txt')).toMatchObject({
      writes: 1,
      rev: first.rev,
    });
  });

  it('different content in add mode is a 409 path/conflict/file', async () => {
    await alice.filesUpload({ path: '/vm/two.txt', contents: Buffer.from('v1') });
    const e = await failure(
      alice.filesUpload({ path: '/vm/two.txt', contents: Buffer.from('v2'), mode: { '.tag': 'add' } }),
    );
    expect(e.status).toBe(409);
    expect(e.headers.get('content-type')).toBe('application/json');
    expect(e.error.error_summary.startsWith('path/conflict/file/')).toBe(true);
    expect(e.error.error['.tag']).toBe('path');
    expect(e.error.error.reason['.tag']).toBe('conflict');
    expect(e.error.error.reason.conflict['.tag']).toBe('file');
    expect(typeof e.error.error.upload_session_id).toBe('string');
    expect(emu.files(ALICE.accountId).find((f) => f.pathLower === '/vm/two.txt')).toMatchObject({ size: 2, writes: 1 });
  });

  it('overwrite replaces content in place with a later rev; autorename adds " (1)"', async () => {
    const v1 = (await alice.filesUpload({ path: '/ow/a.txt', contents: Buffer.from('one') })).result;
    const v2 = (
      await alice.filesUpload({ path: '/ow/a.txt', contents: Buffer.from('two!'), mode: { '.tag': 'overwrite' } })
    ).result;
    expect(v2.id).toBe(v1.id);
    expect(v2.size).toBe(4);
    expect(v2.rev > v1.rev && v2.rev.length === v1.rev.length).toBe(true);
    expect(emu.files(ALICE.accountId).find((f) => f.pathLower === '/ow/a.txt')?.writes).toBe(2);
    const renamed = (await alice.filesUpload({ path: '/ow/a.txt', contents: Buffer.from('three'), autorename: true }))
      .result;
    expect(renamed.path_display).toBe('/ow/a (1).txt');
  });

  it('accepts both spellings of a void WriteMode', async () => {
    const headers = (mode: unknown) => ({
      Authorization: `Bearer ${ALICE.token}`,
      'Dropbox-API-Arg': JSON.stringify({ path: '/modes/m.txt', mode }),
    });
    expect((await rawUpload(emu.url, headers('add'), 'a')).status).toBe(200);
    expect((await rawUpload(emu.url, headers('add'), 'b')).status).toBe(409);
    const res = await rawUpload(emu.url, headers('overwrite'), 'bb');
    expect(res.status).toBe(200);
    expect(((await res.json()) as { size: number }).size).toBe(2);
    expect((await rawUpload(emu.url, headers({ '.tag': 'bogus' }), 'c')).status).toBe(400);
  });

  it('checks content_hash against the body', async () => {
    const content = Buffer.from('fax page 1');
    const e = await failure(
      alice.filesUpload({ path: '/fax/p1.tif', contents: content, content_hash: contentHash(Buffer.from('other')) }),
    );
    expect(e.status).toBe(409);
    expect(e.error.error['.tag']).toBe('content_hash_mismatch');
    expect(
      (await alice.filesGetMetadata({ path: '/fax/p1.tif' }).catch((err: DropboxResponseError<unknown>) => err)).status,
    ).toBe(409);
    const ok = await alice.filesUpload({ path: '/fax/p1.tif', contents: content, content_hash: contentHash(content) });
    expect(ok.result.content_hash).toBe(contentHash(content));
  });

  it('keeps the stored casing of existing parents', async () => {
    await alice.filesUpload({ path: '/Case/First.txt', contents: Buffer.from('1') });
    const second = (await alice.filesUpload({ path: '/CASE/second.TXT', contents: Buffer.from('2') })).result;
    expect(second.path_display).toBe('/Case/second.TXT');
    expect(second.path_lower).toBe('/case/second.txt');
    // The SDK escapes non-ASCII in Dropbox-API-Arg as \uXXXX; the name must survive the trip.
    const unicode = (await alice.filesUpload({ path: '/Ünï/Файл.txt', contents: Buffer.from('u') })).result;
    expect(unicode).toMatchObject({ name: 'Файл.txt', path_display: '/Ünï/Файл.txt', path_lower: '/ünï/файл.txt' });
  });

  it('get_metadata returns tagged file and folder metadata, or 409 path/not_found', async () => {
    const up = (await alice.filesUpload({ path: '/Meta/Deep/f.bin', contents: Buffer.from([1, 2, 3]) })).result;
    const file = (await alice.filesGetMetadata({ path: '/meta/deep/F.BIN' })).result;
    expect(file).toEqual({ '.tag': 'file', ...up });
    const folder = (await alice.filesGetMetadata({ path: '/META/deep' })).result;
    expect(folder).toEqual({
      '.tag': 'folder',
      name: 'Deep',
      path_lower: '/meta/deep',
      path_display: '/Meta/Deep',
      id: expect.stringMatching(/^id:[A-Za-z0-9_-]{22}$/),
    });
    const e = await failure(alice.filesGetMetadata({ path: '/meta/missing' }));
    expect(e.status).toBe(409);
    expect(e.error.error_summary.startsWith('path/not_found/')).toBe(true);
    expect(e.error.error).toEqual({ '.tag': 'path', path: { '.tag': 'not_found' } });
  });

  it('list_folder pages a recursive listing through list_folder/continue', async () => {
    const expected = new Set(['/list']);
    for (let i = 0; i < 12; i++) {
      const dir = `/list/d${i % 3}`;
      expected.add(dir);
      expected.add(`${dir}/f${i}.txt`);
      await alice.filesUpload({ path: `${dir}/f${i}.txt`, contents: Buffer.from(`file ${i}`) });
    }
    let page = (await alice.filesListFolder({ path: '/List', recursive: true, limit: 4 })).result;
    const seen: string[] = [];
    const sizes: number[] = [];
    for (;;) {
      sizes.push(page.entries.length);
      for (const entry of page.entries) {
        seen.push(entry.path_lower as string);
        if (entry.path_lower?.endsWith('.txt')) expect(entry['.tag']).toBe('file');
        else expect(entry['.tag']).toBe('folder');
      }
      if (!page.has_more) break;
      page = (await alice.filesListFolderContinue({ cursor: page.cursor })).result;
    }
    expect(sizes).toEqual([4, 4, 4, 4]);
    expect(new Set(seen)).toEqual(expected);
    expect(seen).toHaveLength(expected.size);
    // Parents come before their children.
    expect(seen.indexOf('/list/d1')).toBeLessThan(seen.indexOf('/list/d1/f1.txt'));

    // An exhausted cursor reports later changes.
    await alice.filesUpload({ path: '/list/d0/late.txt', contents: Buffer.from('late') });
    await alice.filesUpload({ path: '/elsewhere.txt', contents: Buffer.from('not in /list') });
    const changes = (await alice.filesListFolderContinue({ cursor: page.cursor })).result;
    expect(changes.entries.map((e) => e.path_lower)).toEqual(['/list/d0/late.txt']);
    expect(changes.has_more).toBe(false);
  });

  it('list_folder without recursive lists direct children of the root; default page holds them all', async () => {
    const res = (await bob.filesListFolder({ path: '' })).result;
    expect(res.entries).toEqual([]);
    await bob.filesUpload({ path: '/top.txt', contents: Buffer.from('t') });
    await bob.filesUpload({ path: '/sub/inner.txt', contents: Buffer.from('i') });
    const root = (await bob.filesListFolder({ path: '' })).result;
    expect(root.entries.map((e) => `${e['.tag']} ${e.path_display}`).sort()).toEqual(['file /top.txt', 'folder /sub']);
    expect(root.has_more).toBe(false);
    const missing = await failure(bob.filesListFolder({ path: '/nope' }));
    expect(missing.status).toBe(409);
    expect(missing.error.error.path['.tag']).toBe('not_found');
  });

  it('keeps accounts apart', async () => {
    await alice.filesUpload({ path: '/private/alice.txt', contents: Buffer.from('a') });
    const e = await failure(bob.filesGetMetadata({ path: '/private/alice.txt' }));
    expect(e.error.error.path['.tag']).toBe('not_found');
    expect(emu.files(BOB.accountId).some((f) => f.pathLower === '/private/alice.txt')).toBe(false);
    expect(emu.files(ALICE.accountId).some((f) => f.pathLower === '/private/alice.txt')).toBe(true);
    const cursor = (await alice.filesListFolder({ path: '/private' })).result.cursor;
    expect((await failure(bob.filesListFolderContinue({ cursor }))).status).toBe(400);
  });

  it('answers an unknown token with 401 invalid_access_token', async () => {
    const stranger = createDropboxClient({ accessToken: 'sl.nobody', apiBase: emu.url });
    const e = await failure(stranger.filesUpload({ path: '/x.txt', contents: Buffer.from('x') }));
    expect(e.status).toBe(401);
    expect(e.error).toEqual({
      error_summary: expect.stringMatching(/^invalid_access_token\/\.{0,3}$/),
      error: { '.tag': 'invalid_access_token' },
    });
  });

  it('answers bad Dropbox-API-Arg JSON with 400 text', async () => {
    const res = await rawUpload(emu.url, {
      Authorization: `Bearer ${ALICE.token}`,
      'Dropbox-API-Arg': '{"path": "/a.txt"',
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await res.text()).toBe(
      'Error in call to API function "files/upload": HTTP header "Dropbox-API-Arg": could not decode input as JSON',
    );
  });

  it('answers a missing Authorization header with 400 text naming the route', async () => {
    const res = await fetch(`${emu.url}/2/files/get_metadata`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{"path":"/a"}',
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await res.text()).toBe(
      'Error in call to API function "files/get_metadata": Must provide HTTP header "Authorization" or URL parameter "authorization".',
    );
  });

  it('answers unknown routes with 404 and malformed requests with 4xx, and keeps serving', async () => {
    const auth = { Authorization: `Bearer ${ALICE.token}` };
    expect((await fetch(`${emu.url}/2/files/nope`, { method: 'POST', headers: auth })).status).toBe(404);
    const badBody = await fetch(`${emu.url}/2/files/list_folder`, {
      method: 'POST',
      headers: { ...auth, 'Content-Type': 'application/json' },
      body: '{',
    });
    expect(badBody.status).toBe(400);
    expect(await badBody.text()).toContain('request body: could not decode input as JSON');
    const noSlash = await rawUpload(emu.url, { ...auth, 'Dropbox-API-Arg': '{"path":"a.txt"}' });
    expect(noSlash.status).toBe(400);
    const malformed = await rawUpload(emu.url, { ...auth, 'Dropbox-API-Arg': '{"path":"/a//b.txt"}' });
    expect(malformed.status).toBe(409);
    expect(((await malformed.json()) as ApiErrorBody).error.reason['.tag']).toBe('malformed_path');
    const wrongType = await rawUpload(emu.url, {
      ...auth,
      'Content-Type': 'application/json',
      'Dropbox-API-Arg': '{"path":"/a.txt"}',
    });
    expect(wrongType.status).toBe(400);
    expect((await alice.filesListFolder({ path: '' })).status).toBe(200);
  });

  it('handles many concurrent uploads', async () => {
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        alice.filesUpload({ path: `/burst/${i}.txt`, contents: Buffer.from(`n${i}`) }),
      ),
    );
    expect(new Set(results.map((r) => r.result.rev)).size).toBe(60);
    expect(emu.files(ALICE.accountId).filter((f) => f.pathLower.startsWith('/burst/'))).toHaveLength(60);
  });

  it('admin API lists files, reports stats, adds accounts and sets the rate', async () => {
    const added = await admin<{ accountId: string }>(emu.url, 'accounts', {
      token: 'sl.carol',
      accountId: 'dbid:carol',
    });
    expect(added).toEqual({ status: 200, json: { token: 'sl.carol', accountId: 'dbid:carol' } });
    const carol = createDropboxClient({ accessToken: 'sl.carol', apiBase: emu.url });
    const meta = (await carol.filesUpload({ path: '/c.txt', contents: Buffer.from('carol') })).result;

    const files = await admin<unknown[]>(emu.url, 'files?account=dbid:carol');
    expect(files.json).toEqual([
      {
        accountId: 'dbid:carol',
        pathLower: '/c.txt',
        pathDisplay: '/c.txt',
        size: 5,
        contentHash: meta.content_hash,
        rev: meta.rev,
        id: meta.id,
        serverModified: meta.server_modified,
        writes: 1,
      },
    ]);
    expect((await admin<unknown[]>(emu.url, 'files')).json.length).toBe(emu.files().length);

    const stats = await admin<{
      requests: Record<string, number>;
      uploads: number;
      rateLimited: number;
      filesWritten: number;
    }>(emu.url, 'stats');
    expect(stats.json).toEqual(emu.stats());
    expect(stats.json.requests['/2/files/upload 401']).toBe(1);
    expect(stats.json.requests['/2/files/get_metadata 400']).toBe(1);
    expect(stats.json.requests['/2/files/upload 200']).toBeGreaterThan(60);
    expect(stats.json.uploads).toBeGreaterThanOrEqual(stats.json.requests['/2/files/upload 200'] ?? 0);
    expect(stats.json.filesWritten).toBe(emu.files().reduce((n, f) => n + f.writes, 0));

    expect((await admin(emu.url, 'rate', { uploadsPerSecond: 1 })).json).toEqual({ uploadsPerSecond: 1 });
    await carol.filesUpload({ path: '/r1.txt', contents: Buffer.from('1') });
    expect((await failure(carol.filesUpload({ path: '/r2.txt', contents: Buffer.from('2') }))).status).toBe(429);
    expect((await admin(emu.url, 'rate', { uploadsPerSecond: null })).json).toEqual({ uploadsPerSecond: null });
    await carol.filesUpload({ path: '/r2.txt', contents: Buffer.from('2') });
    expect((await admin(emu.url, 'rate', { uploadsPerSecond: -1 })).status).toBe(400);
    expect((await admin(emu.url, 'accounts', { token: 'has space' })).status).toBe(400);
  });
});

describe('Dropbox emulator rate limit', () => {
  let emu: DropboxEmulator;
  beforeAll(async () => {
    emu = await startDropboxEmulator({ accounts: [ALICE, BOB], uploadsPerSecond: 2 });
  });
  afterAll(() => emu.stop());

  it('answers uploads over the per-token limit with 429, Retry-After and a RateLimitError body', async () => {
    const alice = createDropboxClient({ accessToken: ALICE.token, apiBase: emu.url });
    const bob = createDropboxClient({ accessToken: BOB.token, apiBase: emu.url });
    // Capacity equals the rate, so two go through at once and the third is refused.
    await alice.filesUpload({ path: '/1.txt', contents: Buffer.from('1') });
    await alice.filesUpload({ path: '/2.txt', contents: Buffer.from('2') });
    const e = await failure(alice.filesUpload({ path: '/3.txt', contents: Buffer.from('3') }));
    expect(e.status).toBe(429);
    expect(e.headers.get('content-type')).toBe('application/json');
    const retryAfter = e.headers.get('retry-after') as string;
    expect(retryAfter).toMatch(/^[1-9]\d*$/);
    expect(e.error).toEqual({
      error_summary: expect.stringMatching(/^too_many_requests\/\.{0,3}$/),
      error: { reason: { '.tag': 'too_many_requests' }, retry_after: Number(retryAfter) },
    });

    // RPC routes are not limited, and another token has its own bucket.
    expect((await alice.filesGetMetadata({ path: '/1.txt' })).status).toBe(200);
    await bob.filesUpload({ path: '/1.txt', contents: Buffer.from('b1') });
    await bob.filesUpload({ path: '/2.txt', contents: Buffer.from('b2') });

    expect(emu.files(ALICE.accountId).map((f) => f.pathLower)).toEqual(['/1.txt', '/2.txt']);
    expect(emu.stats()).toMatchObject({ uploads: 5, rateLimited: 1, filesWritten: 4 });
    expect(emu.stats().requests['/2/files/upload 429']).toBe(1);
  });

  it('lets an upload through again after Retry-After', async () => {
    emu.setUploadsPerSecond(4);
    const daveId = emu.addAccount({ token: 'sl.dave' });
    expect(daveId).toMatch(/^dbid:/);
    const dave = createDropboxClient({ accessToken: 'sl.dave', apiBase: emu.url });
    for (let i = 0; i < 4; i++) await dave.filesUpload({ path: `/d${i}`, contents: Buffer.from([i]) });
    const e = await failure(dave.filesUpload({ path: '/d4', contents: Buffer.from([4]) }));
    await new Promise((r) => setTimeout(r, Number(e.headers.get('retry-after')) * 1000));
    expect((await dave.filesUpload({ path: '/d4', contents: Buffer.from([4]) })).status).toBe(200);
  });
});

describe('token bucket', () => {
  it('refills at the rate, caps at the rate, and does not charge refused requests', () => {
    let now = 0;
    const limiter = new TokenBucketLimiter(2, () => now);
    expect(limiter.take('a')).toEqual({ ok: true });
    expect(limiter.take('a')).toEqual({ ok: true });
    expect(limiter.take('a')).toEqual({ ok: false, retryAfterSeconds: 1 });
    now = 400;
    expect(limiter.take('a').ok).toBe(false); // 0.8 tokens
    now = 500;
    // Had the two refusals cost anything, there would be no whole token yet.
    expect(limiter.take('a')).toEqual({ ok: true });
    expect(limiter.take('b')).toEqual({ ok: true });
    now = 60_000;
    expect([limiter.take('a'), limiter.take('a'), limiter.take('a')].map((r) => r.ok)).toEqual([true, true, false]);
  });

  it('has capacity 1 below one upload per second and rounds Retry-After up', () => {
    const limiter = new TokenBucketLimiter(0.25, () => 0);
    expect(limiter.take('a').ok).toBe(true);
    expect(limiter.take('a')).toEqual({ ok: false, retryAfterSeconds: 4 });
    expect(() => new TokenBucketLimiter(0)).toThrow(RangeError);
  });
});

describe('Dropbox emulator with acceptAnyToken', () => {
  it('turns unknown tokens into accounts with stable derived ids', async () => {
    const emu = await startDropboxEmulator({ acceptAnyToken: true });
    try {
      const dbx = createDropboxClient({ accessToken: 'sl.whoever', apiBase: emu.url });
      await dbx.filesUpload({ path: '/demo.txt', contents: Buffer.from('demo') });
      const [file] = emu.files();
      expect(file?.accountId).toMatch(/^dbid:[A-Za-z0-9_-]{40}$/);
      expect(emu.addAccount({ token: 'sl.whoever' })).toBe(file?.accountId);
    } finally {
      await emu.stop();
    }
  });
});

describe('files changed by the account owner', () => {
  it('putFile and removeFile change files behind the API, and listings and downloads see it', async () => {
    // An emulator of its own: a removed file would break the shared one's write counts.
    const emu = await startDropboxEmulator({ accounts: [ALICE] });
    const alice = createDropboxClient({ accessToken: ALICE.token, apiBase: emu.url });
    try {
      await alice.filesUpload({ path: '/owner/kept.txt', contents: Buffer.from('kept') });
      await alice.filesUpload({ path: '/owner/gone.txt', contents: Buffer.from('gone') });
      const put = emu.putFile(ALICE.accountId, '/owner/kept.txt', 'changed by the owner');
      expect(put.contentHash).toBe(contentHash(Buffer.from('changed by the owner')));
      expect(put.writes).toBe(2);
      emu.putFile(ALICE.accountId, '/owner/new/placed.txt', Buffer.from('placed'));
      expect(emu.removeFile(ALICE.accountId, '/Owner/Gone.txt')).toBe(true);
      expect(emu.removeFile(ALICE.accountId, '/owner/gone.txt')).toBe(false);
      const listed = (await alice.filesListFolder({ path: '/owner', recursive: true })).result.entries;
      const files = listed.filter((e) => e['.tag'] === 'file');
      expect(files.map((e) => e.path_lower).sort()).toEqual(['/owner/kept.txt', '/owner/new/placed.txt']);
      const kept = files.find((e) => e.path_lower === '/owner/kept.txt') as { content_hash?: string };
      expect(kept.content_hash).toBe(put.contentHash);
      expect(emu.fileContent(ALICE.accountId, '/owner/kept.txt')?.toString()).toBe('changed by the owner');
      expect((await failure(alice.filesGetMetadata({ path: '/owner/gone.txt' }))).status).toBe(409);
      expect(() => emu.putFile(ALICE.accountId, '/owner/kept.txt/under', 'x')).toThrow(TypeError);
    } finally {
      await emu.stop();
    }
  });
});
