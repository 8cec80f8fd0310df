import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ContentHasher } from './content-hash.js';

/**
 * A non-2xx answer. Handlers throw these so that every failure path goes through one writer and
 * gets the same headers. A string body is sent as text/plain, null as an empty body, anything
 * else as JSON.
 */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly headers: Record<string, string> = {},
    /** Overrides the Content-Type of string bodies (HTML error pages). */
    readonly contentType?: string,
  ) {
    super(typeof body === 'string' ? body : `HTTP ${status}`);
  }
}

/** Dropbox reports request-format problems as 400 plain text, never JSON. */
export function badInput(route: string, detail: string): ApiFailure {
  return new ApiFailure(400, `Error in call to API function "${route}": ${detail}`);
}

/** A Stone union value: `.tag` plus either inlined struct fields or a nested member of the tag's name. */
export type Tagged = { '.tag': string } & Record<string, unknown>;

/**
 * `error_summary` is the chain of tags ending in "/"; sendFailure appends a varying number of
 * dots, as Dropbox does, so that clients that compare it for equality fail here too.
 */
export function summarise(error: Tagged): string {
  const tags: string[] = [];
  let cur: unknown = error;
  while (isTagged(cur)) {
    const tag = cur['.tag'];
    tags.push(tag);
    // Struct members of a union put their fields beside `.tag`; WriteError lives in `reason`.
    cur = isTagged(cur[tag]) ? cur[tag] : cur['reason'];
  }
  return `${tags.join('/')}/`;
}

function isTagged(v: unknown): v is Tagged {
  return typeof v === 'object' && v !== null && typeof (v as Tagged)['.tag'] === 'string';
}

/** 409: the request was well-formed but the route refused it. */
export function routeError(error: Tagged): ApiFailure {
  return new ApiFailure(409, { error_summary: summarise(error), error });
}

/** 403: the token may not use this route or feature (auth.stone's AccessError). */
export function accessError(error: Tagged): ApiFailure {
  return new ApiFailure(403, { error_summary: summarise(error), error });
}

export function authError(tag: string, extra: Record<string, unknown> = {}): ApiFailure {
  return new ApiFailure(401, { error_summary: `${tag}/`, error: { '.tag': tag, ...extra } });
}

export interface RateLimitShape {
  /** Seconds; undefined = neither a Retry-After header nor a body retry_after. */
  retryAfter: number | undefined;
  /** A text/plain body, which clients must read as too_many_requests. */
  plainText?: boolean;
}

export function rateLimited(
  reason: 'too_many_requests' | 'too_many_write_operations',
  shape: RateLimitShape,
): ApiFailure {
  const headers: Record<string, string> =
    shape.retryAfter === undefined ? {} : { 'Retry-After': String(shape.retryAfter) };
  if (shape.plainText) return new ApiFailure(429, 'too_many_requests', headers);
  const error: Record<string, unknown> = { reason: { '.tag': reason } };
  // Production omits retry_after for write contention (it defaults to 1); keep it for the rate limit.
  if (shape.retryAfter !== undefined && reason === 'too_many_requests') error['retry_after'] = shape.retryAfter;
  return new ApiFailure(429, { error_summary: `${reason}/`, error }, headers);
}

/** Dropbox timestamps have whole seconds and a literal Z. */
export function dropboxTime(date: Date = new Date()): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export const DROPBOX_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

/** `id:` plus 22 base64url characters, the shape of real file and folder ids. */
export function newDropboxId(): string {
  return `id:${randomBytes(16).toString('base64url')}`;
}

export function newOpaqueId(bytes = 16): string {
  return randomBytes(bytes).toString('base64url');
}

export function newRequestId(): string {
  return randomBytes(16).toString('hex');
}

/** JSON for an HTTP header: everything outside printable ASCII as \uXXXX, as Dropbox and the SDK do. */
export function headerSafeJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

const DOTS = ['', '.', '..', '...'];

/** Picks the dots from the request id, so one request always reads the same but requests differ. */
function withDots(summary: string, requestId: string): string {
  return summary.replace(/\/\.*$/, `/${DOTS[parseInt(requestId.slice(-1), 16) % DOTS.length] ?? ''}`);
}

function commonHeaders(res: ServerResponse, extra: Record<string, string>): Record<string, string> {
  const id = res.getHeader('X-Dropbox-Request-Id');
  return { 'X-Dropbox-Request-Id': typeof id === 'string' ? id : newRequestId(), ...extra };
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.destroyed || res.headersSent) return;
  // `undefined` must still be valid JSON on the wire (routes with a void result answer `null`).
  const text = JSON.stringify(body ?? null);
  res.writeHead(status, commonHeaders(res, { 'Content-Type': 'application/json', ...headers }));
  res.end(text);
}

export function sendText(
  res: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
  contentType = 'text/plain; charset=utf-8',
): void {
  if (res.destroyed || res.headersSent) return;
  res.writeHead(
    status,
    commonHeaders(res, text === '' && status >= 500 ? headers : { 'Content-Type': contentType, ...headers }),
  );
  res.end(text);
}

export function sendBytes(res: ServerResponse, bytes: Buffer, headers: Record<string, string>, status = 200): void {
  if (res.destroyed || res.headersSent) return;
  res.writeHead(
    status,
    commonHeaders(res, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': String(bytes.length),
      ...headers,
    }),
  );
  res.end(bytes);
}

/**
 * A download answer, honouring a single `Range: bytes=a-b` / `bytes=a-` / `bytes=-n` (the SDK's
 * DropboxFileDownloader fetches ranges in parallel and insists on 206 + Content-Range).
 */
export function sendContent(
  req: IncomingMessage,
  res: ServerResponse,
  bytes: Buffer,
  headers: Record<string, string>,
): void {
  const m = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range?.trim() ?? '');
  if (!m || (m[1] === '' && m[2] === '')) return sendBytes(res, bytes, headers);
  const size = bytes.length;
  const suffix = m[1] === '';
  const start = suffix ? Math.max(0, size - Number(m[2])) : Number(m[1]);
  const end = suffix || m[2] === '' ? size - 1 : Math.min(size - 1, Number(m[2]));
  if (start >= size || end < start) return sendText(res, 416, '', { 'Content-Range': `bytes */${size}`, ...headers });
  sendBytes(res, bytes.subarray(start, end + 1), { ...headers, 'Content-Range': `bytes ${start}-${end}/${size}` }, 206);
}

export function sendFailure(res: ServerResponse, failure: ApiFailure): void {
  const body = failure.body;
  if (typeof body === 'string') return sendText(res, failure.status, body, failure.headers, failure.contentType);
  if (body === null) return sendText(res, failure.status, '', failure.headers);
  const obj = body as Record<string, unknown>;
  const requestId = String(res.getHeader('X-Dropbox-Request-Id') ?? newRequestId());
  const varied =
    typeof obj['error_summary'] === 'string'
      ? { ...obj, error_summary: withDots(obj['error_summary'], requestId) }
      : obj;
  sendJson(res, failure.status, varied, failure.headers);
}

export interface ReadBody {
  /** Kept only when asked for (and not over `maxKeep`). */
  bytes: Buffer | undefined;
  size: number;
  /** Dropbox content hash of the whole body, when asked for. */
  contentHash: string | undefined;
  /** More than `maxKeep` bytes arrived; the rest was drained and discarded. */
  truncated: boolean;
}

/**
 * Reads the whole request body before anything is answered, so a client that is still sending
 * never sees an early response followed by a reset connection.
 */
export function readBody(
  req: IncomingMessage,
  opts: { keep: boolean; hash: boolean; maxKeep: number },
): Promise<ReadBody> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const hasher = opts.hash ? new ContentHasher() : undefined;
    let size = 0;
    let truncated = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      hasher?.update(chunk);
      if (!opts.keep || truncated) return;
      if (size > opts.maxKeep) {
        truncated = true;
        chunks.length = 0;
      } else {
        chunks.push(chunk);
      }
    });
    req.once('end', () =>
      resolve({
        bytes: opts.keep && !truncated ? Buffer.concat(chunks) : undefined,
        size,
        contentHash: hasher?.digest(),
        truncated,
      }),
    );
    req.once('error', reject);
    // A client that disconnects mid-body may produce neither 'end' nor 'error'.
    req.once('close', () => {
      if (!req.complete) reject(new Error('request aborted before its body was complete'));
    });
  });
}
