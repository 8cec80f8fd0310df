import { FailureType } from '../workflows/failures.js';
import { TypedFailure } from './failure.js';

/** Where an item's bytes come from: a media URL, or the text of an SMS. */
export interface ItemSource {
  id: string;
  sourceUrl: string | null;
  body: string | null;
}

/** An item's content as a stream, so large recordings never sit in memory whole. */
export interface OpenedContent {
  /** From Content-Length; null when the source does not say. */
  size: number | null;
  /**
   * The bytes. Reading them throws a SourceUnavailable TypedFailure when the source stalls for
   * longer than the idle timeout, breaks off, or sends other than its Content-Length.
   */
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

/** How long a source may keep Archiver waiting, in ms. */
export interface SourceTimeouts {
  /** From sending the request to the response headers: connecting included. */
  answerMs: number;
  /** Between two chunks of the body: a body that stalls fails, however long the whole takes. */
  idleMs: number;
}

export const DEFAULT_SOURCE_TIMEOUTS: SourceTimeouts = { answerMs: 10_000, idleMs: 10_000 };

/** The schemes Archiver fetches media over. */
const FETCHABLE = new Set(['http:', 'https:']);

const gone = (message: string) => new TypedFailure({ type: FailureType.SourceGone, message });
const unavailable = (message: string) => new TypedFailure({ type: FailureType.SourceUnavailable, message });

/** A network error's cause in a few words (`connect ECONNREFUSED 127.0.0.1:9`), never the URL. */
function networkCause(err: unknown): string {
  const cause = (err as { cause?: unknown }).cause;
  const inner = cause instanceof Error ? cause : err instanceof Error ? err : undefined;
  return inner ? inner.message : String(err);
}

/**
 * Opens an item's content. A source that says the media is gone (404, 410), or a URL that can
 * never work, fails the item; a source that errs, refuses, hangs or stalls is unavailable for now.
 * Error messages never include the URL, which may be signed.
 * @throws TypedFailure of type SourceGone or SourceUnavailable
 */
export async function openItemContent(
  item: ItemSource,
  fetchImpl: typeof fetch = fetch,
  timeouts: SourceTimeouts = DEFAULT_SOURCE_TIMEOUTS,
): Promise<OpenedContent> {
  if (item.body !== null) {
    const bytes = new TextEncoder().encode(item.body);
    return { size: bytes.byteLength, chunks: [bytes] };
  }
  if (item.sourceUrl === null) throw gone(`item ${item.id} has neither source_url nor body`);
  let url: URL;
  try {
    url = new URL(item.sourceUrl);
  } catch {
    throw gone(`source_url of item ${item.id} is not a URL`);
  }
  if (!FETCHABLE.has(url.protocol))
    throw gone(`source_url of item ${item.id} uses ${url.protocol} and only http: and https: can be fetched`);

  const aborter = new AbortController();
  const answerTimer = setTimeout(() => aborter.abort(), timeouts.answerMs);
  let response: Response;
  try {
    response = await fetchImpl(url, { signal: aborter.signal });
  } catch (err) {
    if (aborter.signal.aborted)
      throw unavailable(`source of item ${item.id} did not answer within ${seconds(timeouts.answerMs)}`);
    const cause = networkCause(err);
    // The fetch standard's blocked ports (1, 25, 6000, …): undici refuses them every time.
    if (cause === 'bad port')
      throw gone(`source_url of item ${item.id} uses port ${url.port}, which fetch never connects to`);
    throw unavailable(`fetching item ${item.id} from its source failed: ${cause}`);
  } finally {
    clearTimeout(answerTimer);
  }
  if (response.status === 404 || response.status === 410) {
    await response.body?.cancel().catch(() => undefined);
    throw gone(`source of item ${item.id} answered ${response.status}: the media is gone`);
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel().catch(() => undefined);
    throw unavailable(`source of item ${item.id} answered ${response.status}`);
  }
  const length = response.headers.has('content-length') ? Number(response.headers.get('content-length')) : Number.NaN;
  const size = Number.isSafeInteger(length) && length >= 0 ? length : null;
  return { size, chunks: guardedBody(item.id, response.body, aborter, timeouts.idleMs, size) };
}

/**
 * The body's chunks, failing as SourceUnavailable when the source sends nothing for `idleMs`
 * (only time spent waiting on the source counts), breaks off, or sends other than `expected` bytes.
 */
async function* guardedBody(
  itemId: string,
  body: ReadableStream<Uint8Array>,
  aborter: AbortController,
  idleMs: number,
  expected: number | null,
): AsyncGenerator<Uint8Array> {
  const reader = body.getReader();
  let received = 0;
  let finished = false;
  try {
    for (;;) {
      const idleTimer = setTimeout(() => aborter.abort(), idleMs);
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (err) {
        throw aborter.signal.aborted
          ? unavailable(`source of item ${itemId} stalled: no bytes for ${seconds(idleMs)} after ${received} bytes`)
          : unavailable(`source of item ${itemId} broke off after ${received} bytes: ${networkCause(err)}`);
      } finally {
        clearTimeout(idleTimer);
      }
      if (chunk.done) break;
      received += chunk.value.byteLength;
      yield chunk.value;
    }
    finished = true;
  } finally {
    if (!finished) await reader.cancel().catch(() => undefined);
  }
  if (expected !== null && received !== expected)
    throw unavailable(`source of item ${itemId} sent ${received} of the ${expected} bytes its Content-Length promised`);
}

function seconds(ms: number): string {
  return `${ms / 1000} s`;
}

/** Reads a whole stream into one buffer; for content known to be small. */
export async function readAll(chunks: OpenedContent['chunks']): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of chunks) parts.push(chunk);
  return Buffer.concat(parts);
}

/**
 * Re-cuts a stream into chunks of exactly `size` bytes (the last may be shorter), each tagged
 * with whether it is the last, since upload sessions must close on the final append.
 */
export async function* fixedChunks(
  chunks: OpenedContent['chunks'],
  size: number,
): AsyncGenerator<{ bytes: Buffer; last: boolean }> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let ready: Buffer | undefined;
  for await (const chunk of chunks) {
    pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    pendingBytes += chunk.byteLength;
    while (pendingBytes >= size) {
      const joined = Buffer.concat(pending);
      if (ready) yield { bytes: ready, last: false };
      ready = joined.subarray(0, size);
      pending = [joined.subarray(size)];
      pendingBytes = joined.byteLength - size;
    }
  }
  const tail = Buffer.concat(pending);
  if (ready && tail.byteLength === 0) {
    yield { bytes: ready, last: true };
    return;
  }
  if (ready) yield { bytes: ready, last: false };
  yield { bytes: tail, last: true };
}
