import { afterAll, beforeAll } from 'vitest';
import { Dropbox, DropboxResponseError } from 'dropbox';
import { startDropboxEmulator, type DropboxEmulator } from '../../src/index.js';

/**
 * Small helpers for tests that talk to the emulator (or to Dropbox) without the SDK, for shapes
 * the SDK's parsing would hide: exact status, headers and raw body text.
 */

const DROPBOX_HOSTS = /^https:\/\/(api|content|notify)\.dropboxapi\.com/;

/** A `fetch` that sends the SDK's hard-coded Dropbox hosts to `base` (the emulator) instead. */
export function fetchRewritingTo(base: string): typeof fetch {
  return (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    return fetch(url.replace(DROPBOX_HOSTS, base), init);
  };
}

/** A `dropbox` SDK client for one access token that talks to the emulator at `apiBase`. */
export function createDropboxClient({ accessToken, apiBase }: { accessToken: string; apiBase: string }): Dropbox {
  return new Dropbox({ accessToken, fetch: fetchRewritingTo(apiBase) });
}

/** The runtime shape of `DropboxResponseError.error` for JSON errors (the SDK's type says otherwise). */
export interface ApiErrorBody {
  error_summary: string;
  // Route error unions are deeply nested and vary per route; tests index into them freely.
  error: Record<string, any>;
}

/** The rejection of an SDK call that must fail; throws if it succeeds or fails some other way. */
export async function sdkFailure<T = ApiErrorBody>(call: Promise<unknown>): Promise<DropboxResponseError<T>> {
  try {
    await call;
  } catch (err) {
    if (err instanceof DropboxResponseError) return err as DropboxResponseError<T>;
    throw new Error(`expected a DropboxResponseError, got ${String(err)}`, { cause: err });
  }
  throw new Error('expected the call to fail, but it succeeded');
}

export interface RawAnswer {
  status: number;
  headers: Headers;
  text: string;
  /** Parsed JSON body, or undefined when the body is not JSON. */
  json: any;
  bytes: Buffer;
}

async function answer(res: Response): Promise<RawAnswer> {
  const bytes = Buffer.from(await res.arrayBuffer());
  const text = bytes.toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json, bytes };
}

export interface RawCallOptions {
  token?: string;
  /** Content-upload/download routes: goes into Dropbox-API-Arg (escaped like the SDK does). */
  arg?: unknown;
  /** RPC routes: JSON body; upload routes: raw bytes. */
  body?: unknown;
  contentType?: string;
  headers?: Record<string, string>;
}

/** POST /2/<route>. With `arg` it is a content call (octet-stream body), otherwise RPC (JSON body). */
export async function rawCall(base: string, route: string, opts: RawCallOptions = {}): Promise<RawAnswer> {
  const headers: Record<string, string> = {};
  if (opts.token !== undefined) headers['Authorization'] = `Bearer ${opts.token}`;
  let body: string | Uint8Array | undefined;
  if (opts.arg !== undefined) {
    headers['Dropbox-API-Arg'] = JSON.stringify(opts.arg).replace(
      /[\u007f-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
    headers['Content-Type'] = 'application/octet-stream';
    body =
      opts.body === undefined
        ? undefined
        : opts.body instanceof Uint8Array
          ? new Uint8Array(opts.body)
          : typeof opts.body === 'string'
            ? opts.body
            : JSON.stringify(opts.body);
  } else if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  }
  if (opts.contentType !== undefined) headers['Content-Type'] = opts.contentType;
  Object.assign(headers, opts.headers);
  return answer(
    await fetch(`${base}/2/${route}`, {
      method: 'POST',
      headers,
      ...(body !== undefined ? { body: body as BodyInit } : {}),
    }),
  );
}

/** POST /oauth2/token with the given query string and optional form body / headers. */
export async function tokenCall(
  base: string,
  query: Record<string, string>,
  opts: { form?: Record<string, string>; headers?: Record<string, string> } = {},
): Promise<RawAnswer> {
  const qs = new URLSearchParams(query).toString();
  const init: RequestInit = { method: 'POST', headers: { ...opts.headers } };
  if (opts.form) {
    (init.headers as Record<string, string>)['Content-Type'] = 'application/x-www-form-urlencoded';
    init.body = new URLSearchParams(opts.form).toString();
  }
  return answer(await fetch(`${base}/oauth2/token${qs ? `?${qs}` : ''}`, init));
}

/** GET (no body) or POST (JSON body) /__admin/<path>. */
export async function adminCall(base: string, path: string, body?: unknown): Promise<RawAnswer> {
  const init: RequestInit =
    body === undefined
      ? {}
      : { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
  return answer(await fetch(`${base}/__admin/${path}`, init));
}

/** HTTP Basic credentials for an app. */
export function basicAuth(key: string, secret: string): string {
  return `Basic ${Buffer.from(`${key}:${secret}`).toString('base64')}`;
}

/** A test file's emulator with two static-token accounts, and an SDK client for each. */
export interface TwoAccounts {
  emu: DropboxEmulator;
  alice: Dropbox;
  bob: Dropbox;
}

async function startWithTwoAccounts(
  alice: { token: string; accountId: string },
  bob: { token: string; accountId: string },
): Promise<TwoAccounts> {
  const emu = await startDropboxEmulator({ accounts: [alice, bob] });
  return {
    emu,
    alice: createDropboxClient({ accessToken: alice.token, apiBase: emu.url }),
    bob: createDropboxClient({ accessToken: bob.token, apiBase: emu.url }),
  };
}

/**
 * Starts an emulator with two static-token accounts before the file's tests, hands them to `use`,
 * and stops the emulator after the tests.
 */
export function withTwoAccounts(
  alice: { token: string; accountId: string },
  bob: { token: string; accountId: string },
  use: (two: TwoAccounts) => void,
): void {
  let emu: DropboxEmulator | undefined;
  beforeAll(async () => {
    const two = await startWithTwoAccounts(alice, bob);
    emu = two.emu;
    use(two);
  });
  afterAll(() => emu?.stop());
}
