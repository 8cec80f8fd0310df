import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DropboxContentHasher } from '../../activities/dropbox/content-hash.js';

/**
 * A non-2xx answer. Handlers throw these so that every failure path goes through one writer and
 * gets the same headers. A string body is sent as text/plain, anything else as JSON.
 */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly headers: Record<string, string> = {},
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
 * `error_summary` is the chain of tags; Dropbox appends a varying number of dots, and clients
 * are told not to compare it for equality, so the exact suffix is not significant.
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
  return `${tags.join('/')}/..`;
}

function isTagged(v: unknown): v is Tagged {
  return typeof v === 'object' && v !== null && typeof (v as Tagged)['.tag'] === 'string';
}

/** 409: the request was well-formed but the route refused it. */
export function routeError(error: Tagged): ApiFailure {
  return new ApiFailure(409, { error_summary: summarise(error), error });
}

export function authError(tag: string): ApiFailure {
  return new ApiFailure(401, { error_summary: `${tag}/..`, error: { '.tag': tag } });
}

export function rateLimited(retryAfterSeconds: number): ApiFailure {
  return new ApiFailure(
    429,
    {
      error_summary: 'too_many_requests/..',
      error: { reason: { '.tag': 'too_many_requests' }, retry_after: retryAfterSeconds },
    },
    { 'Retry-After': String(retryAfterSeconds) },
  );
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

export function newOpaqueId(): string {
  return randomBytes(16).toString('base64url');
}

function commonHeaders(extra: Record<string, string>): Record<string, string> {
  return { 'X-Dropbox-Request-Id': randomBytes(16).toString('hex'), ...extra };
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  // `undefined` must still be valid JSON on the wire (routes with a void result answer `null`).
  const text = JSON.stringify(body ?? null);
  res.writeHead(status, commonHeaders({ 'Content-Type': 'application/json', ...headers }));
  res.end(text);
}

export function sendText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, commonHeaders({ 'Content-Type': 'text/plain; charset=utf-8', ...headers }));
  res.end(text);
}

export function sendFailure(res: ServerResponse, failure: ApiFailure): void {
  if (typeof failure.body === 'string') sendText(res, failure.status, failure.body, failure.headers);
  else sendJson(res, failure.status, failure.body, failure.headers);
}

export interface ReadBody {
  /** Kept only when asked for; upload bodies are hashed as they stream and then dropped. */
  bytes: Buffer | undefined;
  size: number;
  contentHash: string | undefined;
  /** More than `maxKeep` bytes arrived; the rest was drained and discarded. */
  truncated: boolean;
}

/**
 * Reads the whole request body before anything is answered, so a client that is still sending
 * never sees an early response followed by a reset connection.
 */
export function readBody(req: IncomingMessage, opts: { keep: boolean; hash: boolean; maxKeep: number }): Promise<ReadBody> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const hasher = opts.hash ? new DropboxContentHasher() : undefined;
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
