import { Dropbox } from 'dropbox';

const DROPBOX_HOSTS = /^https:\/\/(api|content|notify)\.dropboxapi\.com/;

/**
 * A `fetch` that sends the SDK's hard-coded `https://{api,content}.dropboxapi.com` requests to
 * `apiBase` instead (the emulator, or a proxy). The SDK's `domain` option cannot express this.
 */
export function fetchRewritingTo(apiBase: string): typeof fetch {
  const base = apiBase.replace(/\/+$/, '');
  return (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    return fetch(url.replace(DROPBOX_HOSTS, base), init);
  };
}

export interface DropboxClientOptions {
  accessToken: string;
  /** Where Dropbox lives; unset means the real Dropbox. */
  apiBase?: string | undefined;
}

/** A Dropbox SDK client for one customer's token. */
export function createDropboxClient({ accessToken, apiBase }: DropboxClientOptions): Dropbox {
  return new Dropbox({
    accessToken,
    ...(apiBase ? { fetch: fetchRewritingTo(apiBase) } : {}),
  });
}
