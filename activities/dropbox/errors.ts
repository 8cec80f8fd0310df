import { DropboxResponseError } from 'dropbox';
import { FailureType } from '../../workflows/failures.js';
import type { ClassifiedFailure } from '../failure.js';

/** A Dropbox failure already mapped onto the taxonomy, thrown by the adapter's own code. */
export class DropboxFailure extends Error {
  override name = 'DropboxFailure';
  constructor(
    readonly failure: ClassifiedFailure,
    options?: { cause?: unknown },
  ) {
    super(failure.message, options);
  }
}

/**
 * When a 429 carries neither a Retry-After header nor a body `retry_after`: the API schema's own
 * default for `retry_after` (1 s). A longer guess holds the whole customer idle for nothing; if
 * Dropbox is still limiting, the next 429 cuts the customer's rate again, which is the backoff.
 */
export const DEFAULT_RETRY_AFTER_MS = 1_000;

type Tagged = { '.tag'?: string } & Record<string, unknown>;

function tagOf(value: unknown): string | undefined {
  return typeof value === 'object' && value !== null ? (value as Tagged)['.tag'] : undefined;
}

/** The route error union, from `{error_summary, error}` bodies; undefined for text bodies. */
function routeError(body: unknown): Tagged | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const inner = (body as { error?: unknown }).error;
  return typeof inner === 'object' && inner !== null ? (inner as Tagged) : undefined;
}

/** Every nested `.tag` in a route error, outermost first: path/conflict/file → ['path','conflict','file']. */
function tagPath(error: Tagged | undefined): string[] {
  const tags: string[] = [];
  let node: unknown = error;
  for (let depth = 0; depth < 6 && typeof node === 'object' && node !== null; depth++) {
    const tag = tagOf(node);
    if (!tag) {
      // RateLimitError has no tag of its own, only `reason`.
      node = (node as Tagged).reason;
      continue;
    }
    tags.push(tag);
    const n = node as Tagged;
    node = n[tag] ?? n.reason;
  }
  return tags;
}

function retryAfterMs(err: DropboxResponseError<unknown>): number {
  const raw = (err.headers as Headers | undefined)?.get?.('retry-after');
  const header = raw === null || raw === undefined || raw.trim() === '' ? Number.NaN : Number(raw);
  if (Number.isFinite(header) && header >= 0) return Math.max(1, header) * 1000;
  const bodySeconds = Number((routeError(err.error) as { retry_after?: unknown } | undefined)?.retry_after);
  if (Number.isFinite(bodySeconds) && bodySeconds >= 0) return Math.max(1, bodySeconds) * 1000;
  return DEFAULT_RETRY_AFTER_MS;
}

/**
 * Dropbox refused the request's `Dropbox-API-Path-Root` (422 invalid_root or no_permission): the
 * account's root changed since it was learned (it joined or left a team space, or was reconnected).
 */
export function isPathRootRefusal(err: unknown): boolean {
  return err instanceof DropboxResponseError && err.status === 422;
}

/**
 * Maps any failure of a Dropbox call (SDK response error, network error, timeout) onto the
 * taxonomy of DESIGN.md. Decides on `.tag`s, never on `error_summary`, whose dots vary.
 */
export function classifyDropboxError(err: unknown): ClassifiedFailure {
  if (err instanceof DropboxFailure) return err.failure;
  if (!(err instanceof DropboxResponseError)) {
    if (err instanceof Error && err.name === 'TimeoutError')
      return { type: FailureType.Transient, message: 'Dropbox did not answer before the request deadline (timeout)' };
    const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    return { type: FailureType.Transient, message: `network error talking to Dropbox (${message})` };
  }
  const status = err.status;
  const tags = tagPath(routeError(err.error));
  const summary = tags.join('/') || (typeof err.error === 'string' ? err.error.slice(0, 200) : '');
  const described = `Dropbox answered ${status}${summary ? ` ${summary}` : ''}`;
  if (tags.includes('too_many_write_operations')) {
    return { type: FailureType.WriteContention, message: described, retryAfterMs: retryAfterMs(err) };
  }
  if (status === 429) {
    // A plain-text 429 means too_many_requests.
    return { type: FailureType.RateLimited, message: described, retryAfterMs: retryAfterMs(err) };
  }
  if (status === 401) {
    if (tags[0] === 'expired_access_token') return { type: FailureType.AuthExpired, message: described };
    return { type: FailureType.AuthRevoked, message: described };
  }
  // The Data Transport limit: the team's monthly upload calls are used up, so every upload fails until it resets.
  if (status === 403 && tags[0] === 'invalid_account_type' && tags[1] === 'feature')
    return {
      type: FailureType.QuotaExceeded,
      message: `${described}: the team's monthly Data Transport quota is used up`,
    };
  if (status >= 500) return { type: FailureType.Transient, message: described };
  // A stale path root: the adapter learns the root again and retries; should that fail too, back off.
  if (status === 422) return { type: FailureType.Transient, message: described };
  if (status === 409) {
    if (tags.includes('insufficient_space')) return { type: FailureType.StorageFull, message: described };
    if (tags.includes('content_hash_mismatch')) return { type: FailureType.Transient, message: described };
    return { type: FailureType.ItemRejected, message: described };
  }
  // 400 and other 4xx: the request itself is wrong; retrying sends the same request.
  return { type: FailureType.ItemRejected, message: described };
}

/** The route error's tags of a failed Dropbox call, unwrapping the adapter's DropboxFailure; [] for other failures. */
export function routeErrorTags(err: unknown): string[] {
  const response = err instanceof DropboxFailure ? err.cause : err;
  return response instanceof DropboxResponseError ? tagPath(routeError(response.error)) : [];
}
