import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
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
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

/** How long the source may take to start answering before it counts as a transient failure. */
const SOURCE_TIMEOUT_MS = 60_000;

/**
 * Opens an item's content. A source that says the media is gone (404, 410) rejects the item;
 * anything else that fails is transient and retried. Error messages never include the URL, which
 * may be signed.
 * @throws TypedFailure of type ItemRejected or Transient
 */
export async function openItemContent(item: ItemSource, fetchImpl: typeof fetch = fetch): Promise<OpenedContent> {
  if (item.body !== null) {
    const bytes = new TextEncoder().encode(item.body);
    return { size: bytes.byteLength, chunks: [bytes] };
  }
  if (item.sourceUrl === null)
    throw new TypedFailure({
      type: FailureType.ItemRejected,
      message: `item ${item.id} has neither source_url nor body`,
    });
  let response: Response;
  try {
    response = await fetchImpl(item.sourceUrl, { signal: AbortSignal.timeout(SOURCE_TIMEOUT_MS) });
  } catch (err) {
    throw new TypedFailure({
      type: FailureType.Transient,
      message: `fetching item ${item.id} from its source failed: ${(err as Error).message}`,
    });
  }
  if (response.status === 404 || response.status === 410) {
    throw new TypedFailure({
      type: FailureType.ItemRejected,
      message: `source of item ${item.id} answered ${response.status}: the media is gone`,
    });
  }
  if (!response.ok || !response.body) {
    throw new TypedFailure({
      type: FailureType.Transient,
      message: `source of item ${item.id} answered ${response.status}`,
    });
  }
  const length = Number(response.headers.get('content-length'));
  return {
    size: Number.isFinite(length) && response.headers.has('content-length') ? length : null,
    chunks: Readable.fromWeb(response.body as WebReadableStream<Uint8Array>),
  };
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
