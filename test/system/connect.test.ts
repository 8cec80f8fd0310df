/**
 * `archiver connect` as an operator runs it: the real CLI process against embedded Postgres, a
 * real Temporal dev server, a worker and the Dropbox emulator's authorize page, in both modes
 * (the code pasted on stdin, and the redirect to --redirect-port), and once in headless Chromium.
 */
import { loadTokens } from '../../db/tokens.js';
import { testKeyring } from '../support/secret-keys.js';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../dev/ports.js';
import { TASK_QUEUE } from '../../workflows/names.js';
import { launchChromium, testOutputPath } from '../support/browser.js';
import { statusWhen } from '../support/harness.js';
import { insertItems } from '../support/items.js';
import { eventually, uniqueName } from '../support/stack.js';
import { useArchiverStack } from '../support/archiver-stack.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const APP = { key: 'archiver-connect-app', secret: 'archiver-connect-secret', name: 'Archiver' };
const SCOPES = 'files.content.write files.content.read files.metadata.read account_info.read';

const stack = useArchiverStack({
  namespace: 'connect',
  taskQueue: TASK_QUEUE,
  emulator: { apps: [APP] },
  worker: { dropboxApp: APP },
});

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A running `archiver …` whose stdout can be waited on and whose stdin can be typed into. */
interface CliProcess {
  /** The authorize URL the CLI printed. */
  authorizeUrl(): Promise<string>;
  type(text: string): void;
  /** Closes stdin, as Ctrl-D does. */
  endInput(): void;
  result: Promise<CliResult>;
}

function archiver(args: string[], env: Record<string, string | undefined> = {}): CliProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'client/cli.ts', ...args], {
    cwd: ROOT,
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: stack.temporal.address,
      TEMPORAL_NAMESPACE: 'connect',
      DATABASE_URL: stack.database.url,
      DROPBOX_APP_KEY: APP.key,
      DROPBOX_APP_SECRET: APP.secret,
      DROPBOX_API_BASE: stack.emulator.url,
      ...env,
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  const result = new Promise<CliResult>((resolve) =>
    child.once('close', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    }),
  );
  return {
    authorizeUrl: () =>
      eventually(
        () => {
          const m = /^\s+(http:\/\/127\.0\.0\.1:\d+\/oauth2\/authorize\?\S+)$/m.exec(stdout);
          if (!m && child.exitCode !== null) throw new Error(`the CLI exited: ${stderr}`);
          return Promise.resolve(m?.[1]);
        },
        60_000,
        'the authorize URL on stdout',
      ),
    type: (text) => child.stdin.write(text),
    endInput: () => child.stdin.end(),
    result,
  };
}

async function run(args: string[], env: Record<string, string | undefined> = {}, input?: string): Promise<CliResult> {
  const cli = archiver(args, env);
  if (input !== undefined) {
    cli.type(input);
    cli.endInput();
  }
  return cli.result;
}

/** Clicks Allow on the emulator's page as `accountId`, without a browser; the form's fields as a browser sends them. */
async function allow(authorizeUrl: string, accountId: string): Promise<Response> {
  const page = await (await fetch(authorizeUrl)).text();
  const form = new URLSearchParams();
  for (const m of page.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g))
    form.set(m[1] as string, (m[2] as string).replace(/&amp;/g, '&'));
  form.set('decision', 'allow');
  form.set('account', accountId);
  return fetch(`${stack.emulator.url}/oauth2/authorize`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: form.toString(),
    redirect: 'manual',
  });
}

async function shownCode(res: Response): Promise<string> {
  const m = /<code id="authorization-code">([^<]+)<\/code>/.exec(await res.text());
  if (!m) throw new Error(`no code on the page (HTTP ${res.status})`);
  return m[1] as string;
}

/** The refresh token stored for the customer, opened (it is sealed at rest). */
async function storedRefreshToken(id: string): Promise<string | null | undefined> {
  return (await loadTokens(stack.database.db, testKeyring(), id))?.refreshToken;
}

/** A customer whose stored token Dropbox refuses, paused as needs-reauth with `items` waiting. */
async function lapsedCustomer(prefix: string, items: number): Promise<string> {
  const id = uniqueName(prefix);
  await insertItems(stack.database.db, id, `lapsed-${id}`, stack.media.url, items);
  await run(['start', id]);
  await statusWhen(stack.temporal.client, id, (s) => s.state === 'needs-reauth');
  return id;
}

describe('archiver connect', () => {
  it('explains itself with --help', async () => {
    const help = await run(['connect', '--help']);
    expect(help.code).toBe(0);
    for (const text of ['--redirect-port', '--timeout', 'DROPBOX_APP_KEY', 'needs-reauth'])
      expect(help.stdout).toContain(text);
    expect((await run(['--help'])).stdout).toContain('connect');
  });

  it('no-redirect flow: the person pastes the code; a needs-reauth customer resumes and archives again', async () => {
    const id = await lapsedCustomer('paste', 4);
    const accountId = stack.emulator.addAccount({
      accountId: `dbid:${id}`,
      name: 'Paste Person',
      email: 'paste@example.com',
    });
    const cli = archiver(['connect', id]);
    const url = new URL(await cli.authorizeUrl());
    expect(Object.fromEntries(url.searchParams)).toMatchObject({
      client_id: APP.key,
      response_type: 'code',
      token_access_type: 'offline',
      code_challenge_method: 'S256',
      code_challenge: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      scope: SCOPES,
    });
    expect(url.searchParams.has('redirect_uri')).toBe(false);
    const code = await shownCode(await allow(url.href, accountId));
    cli.type(`  ${code}  \n`);
    const done = await cli.result;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toContain(
      `${id}: connected to the Dropbox of Paste Person <paste@example.com> (account ${accountId}); stored; state running`,
    );
    const refreshToken = await storedRefreshToken(id);
    expect(refreshToken).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    expect(done.stdout + done.stderr).not.toContain(refreshToken);
    await statusWhen(stack.temporal.client, id, (s) => s.totals.archived === 4 && s.state === 'idle');
    expect(stack.emulator.files(accountId)).toHaveLength(4);
  });

  it('--redirect-port: the browser brings the code back; a customer that is not running is stored for its start', async () => {
    const id = uniqueName('redirect');
    await insertItems(stack.database.db, id, undefined, stack.media.url, 3);
    const accountId = stack.emulator.addAccount({
      accountId: `dbid:${id}`,
      name: 'Redirect Person',
      email: 'r@example.com',
    });
    const port = await freePort();
    const cli = archiver(['connect', id, '--redirect-port', String(port)]);
    const url = new URL(await cli.authorizeUrl());
    const redirectUri = `http://127.0.0.1:${port}/oauth2/callback`;
    expect(url.searchParams.get('redirect_uri')).toBe(redirectUri);
    const state = url.searchParams.get('state') ?? '';

    // Something else knocking on the listener first is turned away, and the wait goes on.
    const stray = await fetch(`${redirectUri}?code=forged&state=not-${state}`);
    expect(stray.status).toBe(400);
    expect(await stray.text()).toContain('This answer is not for this archiver connect');

    const redirect = await allow(url.href, accountId);
    expect(redirect.status).toBe(302);
    const location = redirect.headers.get('location') ?? '';
    expect(location.startsWith(`${redirectUri}?code=`)).toBe(true);
    const landing = await fetch(location);
    const html = await landing.text();
    expect(html).toContain(`Connected Customer ${id} to Dropbox`);
    expect(html).toContain('Redirect Person (r@example.com)');
    const done = await cli.result;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toContain(`stored; start archiving with: archiver start ${id}`);
    expect(done.stdout).not.toContain((await storedRefreshToken(id)) ?? 'no token stored');
    // The listener is gone once connect is done.
    await expect(fetch(redirectUri)).rejects.toThrow();

    expect((await run(['start', id])).code).toBe(0);
    await statusWhen(stack.temporal.client, id, (s) => s.totals.archived === 3 && s.state === 'idle');
    expect(stack.emulator.files(accountId)).toHaveLength(3);
  });

  it('names the problem: unknown customer, no app configured, a wrong code, a timeout, a port in use, Cancel', async () => {
    const unknown = await run(['connect', 'nobody-here']);
    expect(unknown).toMatchObject({ code: 2, stderr: expect.stringContaining('unknown customer "nobody-here"') });

    const id = uniqueName('errors');
    await insertItems(stack.database.db, id, undefined, stack.media.url, 0);
    const noApp = await run(['connect', id], { DROPBOX_APP_KEY: undefined, DROPBOX_APP_SECRET: undefined });
    expect(noApp).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('set DROPBOX_APP_KEY and DROPBOX_APP_SECRET'),
    });

    const wrong = await run(['connect', id], {}, 'not-the-code\n');
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(
      "Dropbox refused the code (code doesn't exist or has expired): it is wrong, was already used, or has expired; run archiver connect again",
    );

    // Dropbox fails the check of the new token: nothing is stored.
    const accountId = stack.emulator.addAccount({ accountId: `dbid:${id}` });
    stack.emulator.queueFaults(accountId, [{ route: 'users/get_current_account', fault: 500 }]);
    const unchecked = archiver(['connect', id]);
    unchecked.type(`${await shownCode(await allow(await unchecked.authorizeUrl(), accountId))}\n`);
    const uncheckedDone = await unchecked.result;
    expect(uncheckedDone.code).toBe(1);
    expect(uncheckedDone.stderr).toContain(
      'checking the new token with users/get_current_account failed: Dropbox answered HTTP 500',
    );
    expect(await storedRefreshToken(id)).toBeNull();

    const slow = await run(['connect', id, '--timeout', '2s']);
    expect(slow).toMatchObject({ code: 1, stderr: expect.stringContaining('no code was pasted within 2s') });
    const closed = await run(['connect', id], {}, '');
    expect(closed.stderr).toContain('the input ended before a code was pasted');
    const badTimeout = await run(['connect', id, '--timeout', 'forever']);
    expect(badTimeout).toMatchObject({ code: 2, stderr: expect.stringContaining('--timeout must be a duration') });

    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const busyPort = (busy.address() as net.AddressInfo).port;
    try {
      const taken = await run(['connect', id, '--redirect-port', String(busyPort)]);
      expect(taken).toMatchObject({
        code: 2,
        stderr: expect.stringContaining(`port ${busyPort} on 127.0.0.1 is in use`),
      });
    } finally {
      await new Promise((resolve) => busy.close(resolve));
    }
    const waitedPort = await freePort();
    const nobodyCame = await run(['connect', id, '--redirect-port', String(waitedPort), '--timeout', '2s']);
    expect(nobodyCame).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('no answer from the browser within 2s'),
    });

    // Cancel on Dropbox's page: the listener shows it, and the CLI says so.
    const port = await freePort();
    const cli = archiver(['connect', id, '--redirect-port', String(port)]);
    const url = await cli.authorizeUrl();
    const page = await (await fetch(url)).text();
    const form = new URLSearchParams();
    for (const m of page.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g))
      form.set(m[1] as string, m[2] as string);
    form.set('decision', 'deny');
    const denied = await fetch(`${stack.emulator.url}/oauth2/authorize`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: form.toString(),
      redirect: 'manual',
    });
    expect(await (await fetch(denied.headers.get('location') ?? '')).text()).toContain('Dropbox was not connected');
    const cancelled = await cli.result;
    expect(cancelled).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('Dropbox did not authorize Archiver (access_denied'),
    });
    expect(await storedRefreshToken(id)).toBeNull();
  }, 150_000);
});

describe('archiver connect in headless Chromium', () => {
  let browser: Browser | undefined;
  afterAll(async () => {
    await browser?.close().catch(() => undefined);
  });

  it('authorize page → Allow → redirect to --redirect-port → exchange → the customer runs again', async () => {
    browser = await launchChromium();
    const id = await lapsedCustomer('browser', 3);
    const accountId = stack.emulator.addAccount({
      accountId: `dbid:${id}`,
      name: 'Browser Person',
      email: 'b@example.com',
    });
    stack.emulator.signIn(accountId);
    const port = await freePort();
    const cli = archiver(['connect', id, '--redirect-port', String(port)]);
    const url = await cli.authorizeUrl();

    const page = await (await browser.newContext({ viewport: { width: 1000, height: 700 } })).newPage();
    page.setDefaultTimeout(30_000);
    try {
      await page.goto(url);
      await page
        .getByRole('heading', { name: 'Archiver would like access to the files and folders in your Dropbox' })
        .waitFor();
      expect(await page.locator('#account').inputValue()).toBe(accountId);
      await page.screenshot({ path: await testOutputPath('connect-authorize.png'), fullPage: true });
      await page.getByRole('button', { name: 'Allow' }).click();
      await page.waitForURL(`http://127.0.0.1:${port}/oauth2/callback?**`);
      await expect
        .poll(() => page.locator('#result').innerText(), { timeout: 30_000 })
        .toBe(`Connected Customer ${id} to Dropbox`);
      await page.screenshot({ path: await testOutputPath('connect-connected.png'), fullPage: true });
    } catch (err) {
      await page
        .screenshot({ path: await testOutputPath('connect-FAILED.png'), fullPage: true })
        .catch(() => undefined);
      throw err;
    } finally {
      stack.emulator.signIn(undefined);
    }
    const done = await cli.result;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toContain(`${id}: connected to the Dropbox of Browser Person`);
    await statusWhen(stack.temporal.client, id, (s) => s.totals.archived === 3 && s.state === 'idle');
    expect(stack.emulator.files(accountId)).toHaveLength(3);
  }, 120_000);
});
