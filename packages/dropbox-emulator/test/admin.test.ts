import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contentHash } from '../src/content-hash.js';
import { startDropboxEmulator, type DropboxEmulator } from '../src/index.js';
import { adminCall, createDropboxClient, rawCall, sdkFailure, tokenCall } from './support/calls.js';

describe('admin API', () => {
  let emu: DropboxEmulator;

  beforeAll(async () => {
    emu = await startDropboxEmulator({ seed: 3 });
  });
  afterAll(() => emu.stop());

  it('registers apps, refresh-token accounts and authorization codes', async () => {
    expect((await adminCall(emu.url, 'apps', { key: 'adminapp', secret: 'adminsecret' })).json).toEqual({
      key: 'adminapp',
    });
    const added = await adminCall(emu.url, 'accounts', {
      accountId: 'dbid:erin',
      refreshToken: 'rt-erin',
      appKey: 'adminapp',
      name: 'Erin Example',
      scopes: ['files.content.write', 'files.metadata.read'],
    });
    expect(added).toMatchObject({ status: 200, json: { accountId: 'dbid:erin', refreshToken: 'rt-erin' } });
    const refreshed = await tokenCall(emu.url, {
      grant_type: 'refresh_token',
      refresh_token: 'rt-erin',
      client_id: 'adminapp',
      client_secret: 'adminsecret',
    });
    expect(refreshed.status).toBe(200);
    const code = (await adminCall(emu.url, 'codes', { accountId: 'dbid:erin' })).json.code as string;
    const exchanged = await tokenCall(emu.url, {
      grant_type: 'authorization_code',
      code,
      client_id: 'adminapp',
      client_secret: 'adminsecret',
    });
    expect(exchanged.json).toMatchObject({ account_id: 'dbid:erin', scope: 'files.content.write files.metadata.read' });
    expect((await adminCall(emu.url, 'apps', { key: 'bad key', secret: 's' })).status).toBe(400);
    expect((await adminCall(emu.url, 'accounts', { refreshToken: 'rt-x', appKey: 'nope' })).json.error).toMatch(
      /unknown app key "nope"/,
    );
    expect((await adminCall(emu.url, 'codes', {})).json).toEqual({ error: 'accountId must be a non-empty string' });
  });

  it('sets defaults and per-account config, queues faults, expires and revokes tokens', async () => {
    await adminCall(emu.url, 'accounts', { token: 'sl.frank', accountId: 'dbid:frank' });
    const defaults = await adminCall(emu.url, 'config', { commitLatencyMs: 5 });
    expect(defaults.json).toMatchObject({ commitLatencyMs: 5, writeContention: 'none', quotaBytes: null });
    const own = await adminCall(emu.url, 'config', { account: 'dbid:frank', writeContention: '429', quotaBytes: 100 });
    expect(own.json).toMatchObject({ commitLatencyMs: 5, writeContention: '429', quotaBytes: 100 });
    expect((await adminCall(emu.url, 'config?account=dbid:frank')).json).toEqual(own.json);
    expect((await adminCall(emu.url, 'config')).json).toMatchObject({ writeContention: 'none' });
    expect((await adminCall(emu.url, 'config', { account: 'dbid:frank', stallShare: 2 })).json).toEqual({
      error: 'stallShare must be a share from 0 to 1, got 2',
    });

    expect(
      (
        await adminCall(emu.url, 'faults', {
          account: 'dbid:frank',
          faults: [{ route: 'files/upload', fault: 503, retryAfter: 2 }],
        })
      ).json,
    ).toEqual({ queued: 1 });
    const failed = await rawCall(emu.url, 'files/upload', { token: 'sl.frank', arg: { path: '/f.txt' }, body: 'f' });
    expect({ status: failed.status, retryAfter: failed.headers.get('retry-after') }).toEqual({
      status: 503,
      retryAfter: '2',
    });
    expect(
      (await rawCall(emu.url, 'files/upload', { token: 'sl.frank', arg: { path: '/f.txt' }, body: 'f' })).status,
    ).toBe(200);

    expect((await adminCall(emu.url, 'tokens/expire', { account: 'dbid:frank' })).json).toEqual({ expired: 1 });
    expect(
      (await rawCall(emu.url, 'files/list_folder', { token: 'sl.frank', body: { path: '' } })).json.error['.tag'],
    ).toBe('expired_access_token');
    await adminCall(emu.url, 'accounts', { token: 'sl.frank2', accountId: 'dbid:frank' });
    expect((await adminCall(emu.url, 'tokens/revoke', { account: 'dbid:frank' })).status).toBe(200);
    expect(
      (await rawCall(emu.url, 'files/list_folder', { token: 'sl.frank2', body: { path: '' } })).json.error['.tag'],
    ).toBe('invalid_access_token');
    expect((await adminCall(emu.url, 'token-ttl', { seconds: 60 })).json).toEqual({ seconds: 60 });
    expect((await adminCall(emu.url, 'token-ttl', { seconds: -1 })).status).toBe(400);
    expect((await adminCall(emu.url, 'seed', { seed: 5 })).json).toEqual({ seed: 5 });
  });

  it('lists sessions, serves file content and reports stats by route, status and account', async () => {
    await adminCall(emu.url, 'accounts', { token: 'sl.gina', accountId: 'dbid:gina' });
    const gina = createDropboxClient({ accessToken: 'sl.gina', apiBase: emu.url });
    const id = (await gina.filesUploadSessionStart({ contents: Buffer.from('hello ') })).result.session_id;
    // A chunk sent at a stale offset counts as received, though not appended.
    await sdkFailure(
      gina.filesUploadSessionAppendV2({ cursor: { session_id: id, offset: 0 }, contents: Buffer.from('hello ') }),
    );
    await gina.filesUploadSessionFinish({
      cursor: { session_id: id, offset: 6 },
      commit: { path: '/Greeting.txt' },
      contents: Buffer.from('world'),
    });

    const sessions = await adminCall(emu.url, 'sessions?account=dbid:gina');
    expect(sessions.json).toEqual([
      {
        sessionId: id,
        accountId: 'dbid:gina',
        type: 'sequential',
        state: 'committed',
        offset: 11,
        bytesReceived: 17,
        requests: 3,
        createdAt: expect.any(String),
        path: '/Greeting.txt',
      },
    ]);
    expect((await adminCall(emu.url, `sessions?id=${encodeURIComponent(id)}`)).json).toEqual(sessions.json[0]);
    expect((await adminCall(emu.url, 'sessions?id=nope')).status).toBe(404);

    const content = await adminCall(emu.url, 'files/content?account=dbid:gina&path=/greeting.TXT');
    expect({ status: content.status, text: content.text }).toEqual({ status: 200, text: 'hello world' });
    expect((await adminCall(emu.url, 'files/content?account=dbid:gina&path=/none')).status).toBe(404);
    const files = await adminCall(emu.url, 'files?account=dbid:gina');
    expect(files.json).toEqual([
      expect.objectContaining({
        pathDisplay: '/Greeting.txt',
        size: 11,
        contentHash: contentHash(Buffer.from('hello world')),
        writes: 1,
      }),
    ]);

    const stats = (await adminCall(emu.url, 'stats')).json;
    expect(stats).toEqual(emu.stats());
    expect(stats.accounts['dbid:gina']).toEqual({
      requests: {
        '/2/files/upload_session/start 200': 1,
        '/2/files/upload_session/append_v2 409': 1,
        '/2/files/upload_session/finish 200': 1,
      },
      tokenRequests: 0,
      bytesReceived: 17,
      commits: 1,
      maxConcurrentCommits: 1,
      writeContention: 0,
      rateLimited: 0,
      faults: {},
    });
    expect(stats.requests['/2/files/upload_session/finish 200']).toBe(1);
    expect(stats.tokenRequests).toBe(2);
    expect(stats.accounts['dbid:erin'].tokenRequests).toBe(2);

    expect((await adminCall(emu.url, 'stats/reset', {})).status).toBe(200);
    expect(emu.stats()).toMatchObject({ requests: {}, uploads: 0, rateLimited: 0, tokenRequests: 0 });
    expect(emu.stats().accounts['dbid:gina']?.bytesReceived).toBe(0);
    expect((await adminCall(emu.url, 'nope')).status).toBe(404);
  });
});

describe('content retention and the on-disk store', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'emulator-store-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('keeps files, folders, revs and bytes across restarts', async () => {
    const account = { token: 'sl.persist', accountId: 'dbid:persist' };
    const first = await startDropboxEmulator({ storeDir: dir, accounts: [account] });
    const dbx = createDropboxClient({ accessToken: account.token, apiBase: first.url });
    await dbx.filesUpload({ path: '/Keep/One.txt', contents: Buffer.from('one') });
    await dbx.filesUpload({
      path: '/Keep/One.txt',
      contents: Buffer.from('one, again'),
      mode: { '.tag': 'overwrite' },
    });
    await dbx.filesUpload({ path: '/Keep/Two.txt', contents: Buffer.from('two') });
    const before = first.files();
    await first.stop();
    expect((await readFile(join(dir, 'journal.jsonl'), 'utf8')).trim().split('\n')).toHaveLength(4);

    const second = await startDropboxEmulator({ storeDir: dir, accounts: [account] });
    try {
      expect(second.files()).toEqual(before);
      const again = createDropboxClient({ accessToken: account.token, apiBase: second.url });
      const down = await again.filesDownload({ path: '/keep/one.txt' });
      expect((down.result as unknown as { fileBinary: Buffer }).fileBinary.toString()).toBe('one, again');
      const listed = (await again.filesListFolder({ path: '/keep' })).result.entries.map((e) => e.name);
      expect(listed.sort()).toEqual(['One.txt', 'Two.txt']);
      const three = (await again.filesUpload({ path: '/Keep/Three.txt', contents: Buffer.from('3') })).result;
      expect(before.every((f) => f.rev < three.rev)).toBe(true);
    } finally {
      await second.stop();
    }
  });

  it('with keepContent: false, download answers 400 text', async () => {
    const emu = await startDropboxEmulator({
      keepContent: false,
      accounts: [{ token: 'sl.nokeep', accountId: 'dbid:nokeep' }],
    });
    try {
      const dbx = createDropboxClient({ accessToken: 'sl.nokeep', apiBase: emu.url });
      const meta = (await dbx.filesUpload({ path: '/big.bin', contents: Buffer.from('bytes') })).result;
      expect(meta.content_hash).toBe(contentHash(Buffer.from('bytes')));
      const e = await sdkFailure<string>(dbx.filesDownload({ path: '/big.bin' }));
      expect(e.status).toBe(400);
      expect(e.error).toBe(
        'Error in call to API function "files/download": the emulator does not keep file content (keepContent: false), so it cannot serve downloads',
      );
      expect(emu.fileContent('dbid:nokeep', '/big.bin')).toBeUndefined();
      const id = (await dbx.filesUploadSessionStart({ contents: Buffer.from('ses'), close: true })).result.session_id;
      expect(
        (await dbx.filesUploadSessionFinish({ cursor: { session_id: id, offset: 3 }, commit: { path: '/s.bin' } }))
          .result.content_hash,
      ).toBe(contentHash(Buffer.from('ses')));
    } finally {
      await emu.stop();
    }
  });
});

describe('command line', () => {
  const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
  const run = (args: string[]): { child: ReturnType<typeof spawn>; out: Promise<string> } => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout?.on('data', (d: Buffer) => (text += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (text += d.toString()));
    return { child, out: new Promise((resolve) => child.once('exit', () => resolve(text))) };
  };

  it('--help documents the start-up knobs', async () => {
    const help = await run(['--help']).out;
    for (const flag of [
      '--store-dir',
      '--no-keep-content',
      '--token-ttl',
      '--quota',
      '--fail-5xx',
      '--write-contention',
      '--commit-latency',
      '--app',
      '--refresh-account',
      '--seed',
      '--stall',
      '--reset',
      '--plain-429',
      '--omit-retry-after',
    ]) {
      expect(help).toContain(flag);
    }
  });

  it('starts with fault defaults and OAuth accounts from flags', async () => {
    const { child, out } = run([
      '--app',
      'cliapp:clisecret',
      '--refresh-account',
      'rt-cli=dbid:cli',
      '--quota',
      '4',
      '--fail-5xx',
      '0',
      '--token-ttl',
      '600',
    ]);
    try {
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout?.on('data', (d: Buffer) => {
          const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(d.toString());
          if (m) resolve(m[1] as string);
        });
        child.once('exit', () => reject(new Error('emulator exited')));
      });
      const token = await tokenCall(url, {
        grant_type: 'refresh_token',
        refresh_token: 'rt-cli',
        client_id: 'cliapp',
        client_secret: 'clisecret',
      });
      expect(token.json.expires_in).toBe(600);
      const over = await rawCall(url, 'files/upload', {
        token: token.json.access_token,
        arg: { path: '/x' },
        body: '12345',
      });
      expect(over.json.error.reason['.tag']).toBe('insufficient_space');
    } finally {
      child.kill('SIGTERM');
      await out;
    }
  });

  it('exits 2 on bad flags', async () => {
    const { child, out } = run(['--fail-5xx', '2']);
    const text = await out;
    expect(child.exitCode).toBe(2);
    expect(text).toContain('--fail-5xx must be a share from 0 to 1, got "2"');
  });
});
