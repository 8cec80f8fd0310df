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
}

/** A Dropbox SDK client for one customer's token; every request it sends has a deadline. */
export function createDropboxClient({ accessToken, apiBase, timeouts }: DropboxClientOptions): Dropbox {
  return new Dropbox({ accessToken, fetch: dropboxFetch(apiBase, timeouts) });
}
