// The two ways `archiver connect` receives the authorization code: pasted by the person on stdin
// (the no-redirect flow), or from the browser's redirect to a listener on 127.0.0.1.

import { createServer, type Server, type ServerResponse } from 'node:http';
import { createInterface } from 'node:readline';
import { CustomerRefused, OperatorError } from './archiver-client.js';

/** The person did not finish the authorization in time. */
export class AuthorizationTimedOut extends Error {
  override name = 'AuthorizationTimedOut';
}

/** What a browser sees at the end: a title and one paragraph. */
export interface ResultPage {
  ok: boolean;
  title: string;
  text: string;
}

function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );
}

function sendPage(res: ServerResponse, status: number, page: ResultPage): void {
  if (res.headersSent || res.destroyed) return;
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Archiver: ${escapeHtml(page.title)}</title>
<style>body{font-family:sans-serif;max-width:36em;margin:3em auto}h1{color:${page.ok ? '#1a7f37' : '#b42318'}}</style>
</head><body><h1 id="result">${escapeHtml(page.title)}</h1><p id="detail">${escapeHtml(page.text)}</p>
<p>You can close this tab and return to the terminal.</p></body></html>`;
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(html);
}

/** A code the browser delivered; its tab waits for `finish` to say how connecting ended. */
export interface RedirectedCode {
  code: string;
  finish(page: ResultPage): void;
}

/** The path Dropbox redirects to; register `http://127.0.0.1:<port>/oauth2/callback` in the App Console. */
export const CALLBACK_PATH = '/oauth2/callback';

/** How long the browser's tab may wait for the exchange and the check before it is told to look at the terminal. */
const FINISH_WAIT_MS = 120_000;

/**
 * Listens on 127.0.0.1:`port` for Dropbox's redirect. Only a redirect carrying `state` counts;
 * others get an error page and the wait goes on.
 */
export class RedirectListener {
  private constructor(
    private readonly server: Server,
    readonly redirectUri: string,
  ) {}

  /** @throws OperatorError when the port is taken or cannot be bound */
  static async listen(port: number): Promise<RedirectListener> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(
          new OperatorError(
            err.code === 'EADDRINUSE'
              ? `port ${port} on 127.0.0.1 is in use; free it or give another --redirect-port (registered in the Dropbox App Console as http://127.0.0.1:<port>${CALLBACK_PATH})`
              : `cannot listen on 127.0.0.1:${port} for Dropbox's redirect: ${err.message}`,
          ),
        );
      });
      server.listen(port, '127.0.0.1', () => resolve());
    });
    return new RedirectListener(server, `http://127.0.0.1:${port}${CALLBACK_PATH}`);
  }

  /**
   * The code of the first redirect with the expected `state`.
   * @throws AuthorizationTimedOut after `timeoutMs`; CustomerRefused when the person clicked Cancel
   */
  code(state: string, timeoutMs: number): Promise<RedirectedCode> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.server.off('request', onRequest);
        reject(new AuthorizationTimedOut(`no answer from the browser within ${timeoutMs / 1000}s`));
      }, timeoutMs);
      const onRequest = (req: { url?: string }, res: ServerResponse): void => {
        const url = new URL(req.url ?? '/', 'http://127.0.0.1');
        if (url.pathname !== CALLBACK_PATH)
          return sendPage(res, 404, { ok: false, title: 'Not found', text: `Dropbox redirects to ${CALLBACK_PATH}.` });
        if (url.searchParams.get('state') !== state)
          return sendPage(res, 400, {
            ok: false,
            title: 'This answer is not for this archiver connect',
            text: 'Its state does not match the one Archiver sent, so it was ignored. Open the URL the terminal shows.',
          });
        clearTimeout(timer);
        this.server.off('request', onRequest);
        const error = url.searchParams.get('error');
        const code = url.searchParams.get('code');
        if (error !== null || code === null) {
          const why = url.searchParams.get('error_description') ?? error ?? 'no code in the redirect';
          sendPage(res, 200, { ok: false, title: 'Dropbox was not connected', text: why });
          return reject(new CustomerRefused(`Dropbox did not authorize Archiver (${error ?? 'no code'}: ${why})`));
        }
        const giveUp = setTimeout(
          () => sendPage(res, 200, { ok: false, title: 'Still working', text: 'See the terminal for the outcome.' }),
          FINISH_WAIT_MS,
        );
        resolve({
          code,
          finish: (page) => {
            clearTimeout(giveUp);
            sendPage(res, 200, page);
          },
        });
      };
      this.server.on('request', onRequest);
    });
  }

  /** Stops listening; a page still being written is let finish. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
  }
}

/**
 * The first non-blank line of `input`, trimmed: the code the person pasted.
 * @throws AuthorizationTimedOut after `timeoutMs`; OperatorError when the input ends first
 */
export function readPastedCode(input: NodeJS.ReadableStream, timeoutMs: number): Promise<string> {
  const lines = createInterface({ input, terminal: false });
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new AuthorizationTimedOut(`no code was pasted within ${timeoutMs / 1000}s`)),
      timeoutMs,
    );
    lines.on('line', (line) => {
      const code = line.trim();
      if (code === '') return;
      clearTimeout(timer);
      resolve(code);
    });
    lines.once('close', () => {
      clearTimeout(timer);
      reject(new OperatorError('the input ended before a code was pasted'));
    });
  }).finally(() => lines.close());
}
