import { Dropbox } from 'dropbox';

const DROPBOX_HOSTS = /^https:\/\/(api|content|notify)\.dropboxapi\.com/;

/**
 * How long one Dropbox request may take, answer and body included, before it counts as lost: a
 * base, plus time for the bytes it carries. Upload activities heartbeat on a timer, so without
 * this a request Dropbox never answers would hold its item for ever.
 */
export interface DropboxTimeouts {
  requestMs: number;
  /** Added per MiB the request sends: 2 s is 0.5 MiB/s, slower than any upload we accept. */
  perMiBMs: number;
}

export const DEFAULT_DROPBOX_TIMEOUTS: DropboxTimeouts = { requestMs: 30_000, perMiBMs: 2_000 };

function bodyBytes(body: RequestInit['body']): number {
  if (typeof body === 'string') return Buffer.byteLength(body);
  if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return body.byteLength;
  return 0;
}

/**
 * A `fetch` for the SDK that gives every request its own deadline and, with `apiBase`, sends the
 * SDK's hard-coded `https://{api,content}.dropboxapi.com` requests there instead (the emulator, or
 * a proxy). The SDK's `domain` option cannot express that.
 */
export function dropboxFetch(
  apiBase: string | undefined,
  timeouts: DropboxTimeouts = DEFAULT_DROPBOX_TIMEOUTS,
): typeof fetch {
  const base = apiBase?.replace(/\/+$/, '');
  return (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const deadline = AbortSignal.timeout(
      timeouts.requestMs + Math.ceil((bodyBytes(init?.body) / (1024 * 1024)) * timeouts.perMiBMs),
    );
    const signal = init?.signal ? AbortSignal.any([init.signal, deadline]) : deadline;
    return fetch(base ? url.replace(DROPBOX_HOSTS, base) : url, { ...init, signal });
  };
}

export interface DropboxClientOptions {
  accessToken: string;
  /** Where Dropbox lives; unset means the real Dropbox. */
  apiBase?: string | undefined;
  timeouts?: DropboxTimeouts | undefined;
  /**
   * The `Dropbox-API-Path-Root` header, a JSON string such as `{".tag":"root","root":"<id>"}`:
   * paths then resolve in that namespace (a team space) instead of the user's home. Unset: home.
   */
  pathRoot?: string | undefined;
}

/** A Dropbox SDK client for one customer's token; every request it sends has a deadline. */
export function createDropboxClient({ accessToken, apiBase, timeouts, pathRoot }: DropboxClientOptions): Dropbox {
  return new Dropbox({ accessToken, fetch: dropboxFetch(apiBase, timeouts), ...(pathRoot ? { pathRoot } : {}) });
}

/**
 * The path root a token's requests need, from `users/get_current_account`'s `root_info`: for a
 * member of a team with a team space (root namespace apart from the home namespace), the team
 * space's root, so the customer's archive lands in the team space; for a user, or a team member
 * whose root is its home, none. An App-folder app never needs one: its paths are inside the app's
 * folder, in the user's home.
 */
export async function pathRootOf(dropbox: Dropbox): Promise<string | undefined> {
  const { root_info: root } = (await dropbox.usersGetCurrentAccount()).result;
  if (root.root_namespace_id === root.home_namespace_id) return undefined;
  return JSON.stringify({ '.tag': 'root', root: root.root_namespace_id });
}
