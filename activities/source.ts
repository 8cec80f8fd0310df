import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../workflows/failures.js';

/** Where an item's bytes come from: a media URL, or the text of an SMS. */
export interface ItemSource {
  id: string;
  sourceUrl: string | null;
  body: string | null;
}

/** How long fetching one item's media may take before it counts as a transient failure. */
const SOURCE_TIMEOUT_MS = 120_000;

/**
 * Reads an item's content. A source that says the media is gone (404, 410) rejects the item;
 * anything else that fails is transient and retried.
 * @throws ApplicationFailure of type ItemRejected or Transient
 */
export async function readItemContent(item: ItemSource, fetchImpl: typeof fetch = fetch): Promise<Uint8Array> {
  if (item.body !== null) return new TextEncoder().encode(item.body);
  if (item.sourceUrl === null) throw ApplicationFailure.nonRetryable(`item ${item.id} has neither source_url nor body`, FailureType.ItemRejected);
  let response: Response;
  try {
    response = await fetchImpl(item.sourceUrl, { signal: AbortSignal.timeout(SOURCE_TIMEOUT_MS) });
  } catch (err) {
    throw ApplicationFailure.retryable(`fetching item ${item.id} from its source failed: ${(err as Error).message}`, FailureType.Transient);
  }
  if (response.status === 404 || response.status === 410) {
    throw ApplicationFailure.nonRetryable(`source of item ${item.id} answered ${response.status}: the media is gone`, FailureType.ItemRejected);
  }
  if (!response.ok) {
    throw ApplicationFailure.retryable(`source of item ${item.id} answered ${response.status}`, FailureType.Transient);
  }
  return new Uint8Array(await response.arrayBuffer());
}
