import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDropboxEmulator, type DropboxEmulator } from '../src/index.js';
import { adminCall, createDropboxClient, rawCall, sdkFailure, tokenCall, type RawAnswer } from './support/calls.js';

const SUMMARY = (tag: string): RegExp => new RegExp(`^${tag.replace(/\//g, '\\/')}\\/\\.{0,3}$`);

describe('fault injection', () => {
  let emu: DropboxEmulator;
  let n = 0;

  beforeAll(async () => {
    emu = await startDropboxEmulator({ seed: 1, apps: [{ key: 'faultapp', secret: 'faultsecret' }] });
  });
  afterAll(() => emu.stop());

  /** A fresh account per test, so configs and counts don't leak between tests. */
  function account(): { token: string; id: string } {
    const token = `sl.faults-${++n}`;
    return { token, id: emu.addAccount({ token, accountId: `dbid:faults-${n}` }) };
  }
  const upload = (token: string, path: string, body = 'x'): Promise<RawAnswer> =>
    rawCall(emu.url, 'files/upload', { token, arg: { path }, body });
  const stats = (id: string) => emu.stats().accounts[id];

  it('scripted 5xx answers have the real shapes and are not processed', async () => {
    const a = account();
    emu.queueFaults(a.id, [{ fault: 500 }, { fault: 502 }, { fault: 503, retryAfter: 7 }, { fault: 504 }]);
    const [r500, r502, r503, r504] = [
      await upload(a.token, '/a'),
      await upload(a.token, '/a'),
      await upload(a.token, '/a'),
      await upload(a.token, '/a'),
    ];
    expect({ status: r500?.status, text: r500?.text, type: r500?.headers.get('content-type') }).toEqual({
      status: 500,
      text: '',
      type: null,
    });
    expect(r500?.headers.get('x-dropbox-request-id')).toMatch(/^[0-9a-f]{32}$/);
    expect(r502?.status).toBe(502);
    expect(r502?.headers.get('content-type')).toBe('text/html');
    expect(r502?.text).toContain('<title>502 Bad Gateway</title>');
    expect(r503?.status).toBe(503);
    expect(r503?.headers.get('retry-after')).toBe('7');
    expect(r503?.text).toBe(
      'upstream connect error or disconnect/reset before headers. reset reason: connection termination',
    );
    expect(r504?.text).toContain('<title>504 Gateway Time-out</title>');
    expect(emu.files(a.id)).toEqual([]);
    expect((await upload(a.token, '/a')).status).toBe(200);
    expect(stats(a.id)?.faults).toEqual({ 500: 1, 502: 1, 503: 1, 504: 1 });
    expect(stats(a.id)?.requests).toEqual({
      '/2/files/upload 500': 1,
      '/2/files/upload 502': 1,
      '/2/files/upload 503': 1,
      '/2/files/upload 504': 1,
      '/2/files/upload 200': 1,
    });
  });

  it('reset drops the connection unprocessed; lost_response processes, then drops it', async () => {
    const a = account();
    emu.queueFaults(a.id, [{ route: 'files/upload', fault: 'reset' }]);
    await expect(upload(a.token, '/reset.txt')).rejects.toThrow();
    expect(emu.files(a.id)).toEqual([]);
    emu.queueFaults(a.id, [{ route: 'files/upload', fault: 'lost_response' }]);
    await expect(upload(a.token, '/lost.txt')).rejects.toThrow();
    expect(emu.files(a.id).map((f) => f.pathLower)).toEqual(['/lost.txt']);
    expect(stats(a.id)?.requests).toEqual({ '/2/files/upload reset': 1, '/2/files/upload lost': 1 });
  });

  it('stall never answers until the client gives up', async () => {
    const a = account();
    emu.queueFaults(a.id, [{ fault: 'stall' }]);
    const started = Date.now();
    const stalled = fetch(`${emu.url}/2/files/list_folder`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${a.token}`, 'Content-Type': 'application/json' },
      body: '{"path":""}',
      signal: AbortSignal.timeout(300),
    });
    await expect(stalled).rejects.toThrow(/abort|timeout/i);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    await new Promise((r) => setTimeout(r, 50));
    expect(stats(a.id)?.requests).toEqual({ '/2/files/list_folder stalled': 1 });
  });

  it('random shares follow the seed', async () => {
    const a = account();
    emu.configureAccount(a.id, {
      serverErrorShare: 0.5,
      serverErrorStatuses: [503],
      faultRoutes: ['files/get_metadata'],
    });
    const run = async (): Promise<number[]> => {
      emu.setSeed(99);
      const out: number[] = [];
      for (let i = 0; i < 16; i++)
        out.push((await rawCall(emu.url, 'files/get_metadata', { token: a.token, body: { path: '/none' } })).status);
      return out;
    };
    const first = await run();
    expect(await run()).toEqual(first);
    expect(first).toContain(503);
    expect(first).toContain(409);
    // Routes outside faultRoutes are never hit.
    expect((await rawCall(emu.url, 'files/list_folder', { token: a.token, body: { path: '' } })).status).toBe(200);
  });

  it('429 too_many_requests comes as JSON, as plain text, or without Retry-After', async () => {
    const a = account();
    emu.configureAccount(a.id, { tooManyRequestsShare: 1, faultRoutes: ['files/upload'] });
    const json = await upload(a.token, '/r');
    expect(json.status).toBe(429);
    expect(json.headers.get('retry-after')).toBe('1');
    expect(json.json).toEqual({
      error_summary: expect.stringMatching(SUMMARY('too_many_requests')),
      error: { reason: { '.tag': 'too_many_requests' }, retry_after: 1 },
    });
    emu.configureAccount(a.id, { plainText429Share: 1 });
    const text = await upload(a.token, '/r');
    expect({
      status: text.status,
      type: text.headers.get('content-type'),
      text: text.text,
      retryAfter: text.headers.get('retry-after'),
    }).toEqual({ status: 429, type: 'text/plain; charset=utf-8', text: 'too_many_requests', retryAfter: '1' });
    emu.configureAccount(a.id, { plainText429Share: 0, noRetryAfterShare: 1 });
    const bare = await upload(a.token, '/r');
    expect(bare.headers.get('retry-after')).toBeNull();
    expect(bare.json.error).toEqual({ reason: { '.tag': 'too_many_requests' } });
    expect(stats(a.id)?.rateLimited).toBe(3);
    expect(emu.stats().rateLimited).toBeGreaterThanOrEqual(3);
  });

  it('per-account rate and burst limit each token of the account', async () => {
    const a = account();
    const b = account();
    emu.configureAccount(a.id, { uploadsPerSecond: 1, burst: 3 });
    for (let i = 0; i < 3; i++) expect((await upload(a.token, `/r${i}`)).status).toBe(200);
    const refused = await upload(a.token, '/r3');
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    for (let i = 0; i < 5; i++) expect((await upload(b.token, `/r${i}`)).status).toBe(200);
    expect(emu.accountConfig(a.id)).toMatchObject({ uploadsPerSecond: 1, burst: 3 });
    expect(emu.accountConfig(b.id)).toMatchObject({ uploadsPerSecond: null, burst: null });
  });

  it('added latency delays answers on the configured routes only', async () => {
    const a = account();
    emu.configureAccount(a.id, { latencyMs: 200, faultRoutes: ['files/upload'] });
    let t = Date.now();
    await upload(a.token, '/slow');
    expect(Date.now() - t).toBeGreaterThanOrEqual(190);
    t = Date.now();
    await rawCall(emu.url, 'files/list_folder', { token: a.token, body: { path: '' } });
    expect(Date.now() - t).toBeLessThan(150);
  });

  it('faults reach /oauth2/token only when faultRoutes names it', async () => {
    const id = emu.addAccount({ accountId: 'dbid:faulty-oauth', refreshToken: 'rt-faulty' });
    const refresh = {
      grant_type: 'refresh_token',
      refresh_token: 'rt-faulty',
      client_id: 'faultapp',
      client_secret: 'faultsecret',
    };
    emu.configureAccount(id, { serverErrorShare: 1, serverErrorStatuses: [503] });
    expect((await tokenCall(emu.url, refresh)).status).toBe(200);
    emu.configureAccount(id, { faultRoutes: ['oauth2/token'] });
    expect((await tokenCall(emu.url, refresh)).status).toBe(503);
    expect(stats(id)?.tokenRequests).toBe(2);
  });

  it('quotaBytes answers 409 path/insufficient_space for uploads and finishes', async () => {
    const a = account();
    emu.configureAccount(a.id, { quotaBytes: 10 });
    expect((await upload(a.token, '/q1', '123456')).status).toBe(200);
    const over = await upload(a.token, '/q2', '12345');
    expect(over.status).toBe(409);
    expect(over.json).toEqual({
      error_summary: expect.stringMatching(SUMMARY('path/insufficient_space')),
      error: { '.tag': 'path', reason: { '.tag': 'insufficient_space' }, upload_session_id: expect.any(String) },
    });
    // Overwriting frees the old size first.
    expect(
      (
        await rawCall(emu.url, 'files/upload', {
          token: a.token,
          arg: { path: '/q1', mode: 'overwrite' },
          body: '123456789',
        })
      ).status,
    ).toBe(200);
    const dbx = createDropboxClient({ accessToken: a.token, apiBase: emu.url });
    const id = (await dbx.filesUploadSessionStart({ contents: Buffer.from('abc'), close: true })).result.session_id;
    const e = await sdkFailure(
      dbx.filesUploadSessionFinish({ cursor: { session_id: id, offset: 3 }, commit: { path: '/q3' } }),
    );
    expect(e.error.error).toEqual({ '.tag': 'path', path: { '.tag': 'insufficient_space' } });
    emu.configureAccount(a.id, { quotaBytes: null });
    expect(
      (await dbx.filesUploadSessionFinish({ cursor: { session_id: id, offset: 3 }, commit: { path: '/q3' } })).result
        .size,
    ).toBe(3);
  });

  it('dataTransportExceeded answers every upload route 403 invalid_account_type/feature, and nothing else', async () => {
    const a = account();
    const dbx = createDropboxClient({ accessToken: a.token, apiBase: emu.url });
    const open = (await dbx.filesUploadSessionStart({ contents: Buffer.from('abc'), close: true })).result.session_id;
    const config = await adminCall(emu.url, 'config', { account: a.id, dataTransportExceeded: true });
    expect(config.json).toMatchObject({ dataTransportExceeded: true });
    const quota = {
      error_summary: expect.stringMatching(SUMMARY('invalid_account_type/feature')),
      error: { '.tag': 'invalid_account_type', invalid_account_type: { '.tag': 'feature' } },
    };
    const over = await upload(a.token, '/t1');
    expect({ status: over.status, type: over.headers.get('content-type'), json: over.json }).toEqual({
      status: 403,
      type: 'application/json',
      json: quota,
    });
    const cursor = { session_id: open, offset: 3 };
    const answers = [
      await rawCall(emu.url, 'files/upload_session/start', { token: a.token, arg: {}, body: 'x' }),
      await rawCall(emu.url, 'files/upload_session/append_v2', { token: a.token, arg: { cursor }, body: 'x' }),
      await rawCall(emu.url, 'files/upload_session/finish', {
        token: a.token,
        arg: { cursor, commit: { path: '/t2' } },
      }),
      await rawCall(emu.url, 'files/upload_session/start_batch', { token: a.token, body: { num_sessions: 1 } }),
      await rawCall(emu.url, 'files/upload_session/finish_batch_v2', {
        token: a.token,
        body: { entries: [{ cursor, commit: { path: '/t3' } }] },
      }),
    ];
    expect(answers.map((r): [number, unknown] => [r.status, r.json])).toEqual(answers.map(() => [403, quota]));
    // The SDK surfaces it as a DropboxResponseError like any other route error.
    const e = await sdkFailure(dbx.filesUpload({ path: '/t4', contents: Buffer.from('y') }));
    expect(e.status).toBe(403);
    expect(e.error.error).toEqual(quota.error);
    // Reading is not data transport.
    expect((await rawCall(emu.url, 'users/get_current_account', { token: a.token })).status).toBe(200);
    expect(emu.files(a.id)).toEqual([]);
    emu.configureAccount(a.id, { dataTransportExceeded: false });
    expect((await upload(a.token, '/t1')).status).toBe(200);
    expect(() => emu.configureAccount(a.id, { dataTransportExceeded: 'yes' as never })).toThrow(
      /dataTransportExceeded must be true or false/,
    );
  });

  it('rejects invalid configs and faults', () => {
    const a = account();
    expect(() => emu.configureAccount(a.id, { serverErrorShare: 1.5 })).toThrow(
      /serverErrorShare must be a share from 0 to 1/,
    );
    expect(() => emu.configureAccount(a.id, { writeContention: 'always' as never })).toThrow(/writeContention/);
    expect(() => emu.configureAccount(a.id, { bogus: 1 } as never)).toThrow(/unknown config field "bogus"/);
    expect(() => emu.queueFaults(a.id, [{ fault: 418 as never }])).toThrow(/fault must be one of/);
  });
});

describe('write contention', () => {
  let emu: DropboxEmulator;
  let n = 0;

  beforeAll(async () => {
    emu = await startDropboxEmulator({ seed: 7 });
  });
  afterAll(() => emu.stop());

  function account(config: Parameters<DropboxEmulator['configureAccount']>[1]): { token: string; id: string } {
    const token = `sl.contention-${++n}`;
    const id = emu.addAccount({ token, accountId: `dbid:contention-${n}`, config });
    return { token, id };
  }
  const upload = (token: string, path: string, body = 'x'): Promise<RawAnswer> =>
    rawCall(emu.url, 'files/upload', { token, arg: { path }, body });
  const stats = (id: string) => emu.stats().accounts[id];

  it("'429': an overlapping upload gets 429 too_many_write_operations with Retry-After: 1", async () => {
    const a = account({ writeContention: '429', commitLatencyMs: 300 });
    const results = await Promise.all([upload(a.token, '/one'), upload(a.token, '/two')]);
    expect(results.map((r) => r.status).sort()).toEqual([200, 429]);
    const refused = results.find((r) => r.status === 429) as RawAnswer;
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(refused.headers.get('content-type')).toBe('application/json');
    expect(refused.json).toEqual({
      error_summary: expect.stringMatching(SUMMARY('too_many_write_operations')),
      error: { reason: { '.tag': 'too_many_write_operations' } },
    });
    expect(stats(a.id)).toMatchObject({ commits: 2, maxConcurrentCommits: 2, writeContention: 1, rateLimited: 1 });
    expect(emu.files(a.id)).toHaveLength(1);
  });

  it("'409': upload gets path/too_many_write_operations; finish gets too_many_write_operations after appending its data", async () => {
    const a = account({ writeContention: '409', commitLatencyMs: 300 });
    const dbx = createDropboxClient({ accessToken: a.token, apiBase: emu.url });
    const uploads = await Promise.all([upload(a.token, '/one'), upload(a.token, '/two')]);
    expect(uploads.map((r) => r.status).sort()).toEqual([200, 409]);
    expect(uploads.find((r) => r.status === 409)?.json).toEqual({
      error_summary: expect.stringMatching(SUMMARY('path/too_many_write_operations')),
      error: { '.tag': 'path', reason: { '.tag': 'too_many_write_operations' }, upload_session_id: expect.any(String) },
    });

    const id = (await dbx.filesUploadSessionStart({ contents: Buffer.from('abc') })).result.session_id;
    const holder = upload(a.token, '/holder');
    await new Promise((r) => setTimeout(r, 50));
    const e = await sdkFailure(
      dbx.filesUploadSessionFinish({
        cursor: { session_id: id, offset: 3 },
        commit: { path: '/s.txt' },
        contents: Buffer.from('def'),
      }),
    );
    expect(e.status).toBe(409);
    expect(e.error).toEqual({
      error_summary: expect.stringMatching(SUMMARY('too_many_write_operations')),
      error: { '.tag': 'too_many_write_operations' },
    });
    expect(emu.session(id)?.offset).toBe(6);
    await holder;
    expect(
      (await dbx.filesUploadSessionFinish({ cursor: { session_id: id, offset: 6 }, commit: { path: '/s.txt' } })).result
        .size,
    ).toBe(6);
  });

  it("'409': an overlapping finish_batch_v2 fails batchContentionShare of its entries", async () => {
    const a = account({ writeContention: '409', commitLatencyMs: 300, batchContentionShare: 0.5 });
    const dbx = createDropboxClient({ accessToken: a.token, apiBase: emu.url });
    const ids = (await dbx.filesUploadSessionStartBatch({ num_sessions: 4 })).result.session_ids;
    for (const id of ids)
      await dbx.filesUploadSessionAppendV2({
        cursor: { session_id: id, offset: 0 },
        contents: Buffer.from('data'),
        close: true,
      });
    const holder = upload(a.token, '/holder');
    await new Promise((r) => setTimeout(r, 50));
    const res = await dbx.filesUploadSessionFinishBatchV2({
      entries: ids.map((id, i) => ({ cursor: { session_id: id, offset: 4 }, commit: { path: `/b${i}` } })),
    });
    await holder;
    const failures = res.result.entries.filter((e) => e['.tag'] === 'failure');
    expect(failures).toEqual([
      { '.tag': 'failure', failure: { '.tag': 'too_many_write_operations' } },
      { '.tag': 'failure', failure: { '.tag': 'too_many_write_operations' } },
    ]);
    expect(res.result.entries.filter((e) => e['.tag'] === 'success')).toHaveLength(2);
    expect(stats(a.id)).toMatchObject({ writeContention: 2, maxConcurrentCommits: 2 });
  });

  it("'429' applies to batches as a whole; serialized commits never overlap", async () => {
    const a = account({ writeContention: '429', commitLatencyMs: 200 });
    const dbx = createDropboxClient({ accessToken: a.token, apiBase: emu.url });
    const id = (await dbx.filesUploadSessionStart({ contents: Buffer.from('z'), close: true })).result.session_id;
    const holder = upload(a.token, '/holder');
    await new Promise((r) => setTimeout(r, 50));
    const e = await sdkFailure(
      dbx.filesUploadSessionFinishBatchV2({
        entries: [{ cursor: { session_id: id, offset: 1 }, commit: { path: '/z' } }],
      }),
    );
    expect(e.status).toBe(429);
    expect(e.error.error).toEqual({ reason: { '.tag': 'too_many_write_operations' } });
    await holder;

    const b = account({ writeContention: '429', commitLatencyMs: 20 });
    for (let i = 0; i < 5; i++) expect((await upload(b.token, `/s${i}`)).status).toBe(200);
    expect(stats(b.id)).toMatchObject({ commits: 5, maxConcurrentCommits: 1, writeContention: 0 });
  });

  it("'none' lets overlapping commits through but still measures the overlap", async () => {
    const a = account({ commitLatencyMs: 100 });
    const results = await Promise.all([0, 1, 2].map((i) => upload(a.token, `/p${i}`)));
    expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(stats(a.id)?.maxConcurrentCommits).toBe(3);
    emu.queueFaults(a.id, [{ route: 'files/upload', fault: 'too_many_write_operations' }]);
    const scripted = await upload(a.token, '/q');
    expect(scripted.status).toBe(429);
    expect(scripted.headers.get('retry-after')).toBe('1');
  });
});

describe('stop() with stalled requests', () => {
  it('closes stalled connections and resolves', async () => {
    const emu = await startDropboxEmulator({
      accounts: [{ token: 'sl.stall', accountId: 'dbid:stall' }],
      defaults: { stallShare: 1 },
    });
    const pending = rawCall(emu.url, 'files/list_folder', { token: 'sl.stall', body: { path: '' } });
    await new Promise((r) => setTimeout(r, 100));
    const t = Date.now();
    await emu.stop();
    expect(Date.now() - t).toBeLessThan(1000);
    await expect(pending).rejects.toThrow();
  });
});
