/**
 * The error taxonomy of DESIGN.md: every Dropbox or source failure maps to one of these names,
 * used as the `ApplicationFailure` type. Retry policies and the workflow decide by name, so the
 * names live here, where both workflow and activity code can import them.
 */
export const FailureType = {
  /** 429 too_many_requests (or plain text): retry after Retry-After; the customer slows down. */
  RateLimited: 'RateLimited',
  /** too_many_write_operations: the account's namespace is locked by another write. */
  WriteContention: 'WriteContention',
  /** 5xx, network, timeout, content hash mismatch in transit: retry with backoff. */
  Transient: 'Transient',
  /** 401 expired_access_token: refresh and retry. */
  AuthExpired: 'AuthExpired',
  /** 401 invalid_access_token or invalid_grant: the customer must reconnect Dropbox. */
  AuthRevoked: 'AuthRevoked',
  /** 409 insufficient_space: the customer's Dropbox is full. */
  StorageFull: 'StorageFull',
  /**
   * 403 invalid_account_type/feature on an upload: the Dropbox team has used up its monthly Data
   * Transport quota. The customer pauses as quota-exceeded until the quota resets (the first of
   * the next month, UTC).
   */
  QuotaExceeded: 'QuotaExceeded',
  /** Dropbox refuses the item itself (conflicting content, bad name): nothing to retry. */
  ItemRejected: 'ItemRejected',
  /**
   * The item's source answered 5xx, timed out, stalled, sent a short body or refused the
   * connection: the item waits for its own retry time on the row and gives its place back.
   */
  SourceUnavailable: 'SourceUnavailable',
  /** The item's source answered 404 or 410, or its URL can never work: the item fails. */
  SourceGone: 'SourceGone',
  /** Postgres failed or went away mid-activity: retried like a transient failure, named as Postgres's. */
  DatabaseUnavailable: 'DatabaseUnavailable',
  /** The workflow's own input is invalid (an operator or a client sent bad values): nothing to retry. */
  BadInput: 'BadInput',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/** Failures no retry can fix; the upload activity's retry policy stops on these. */
export const NON_RETRYABLE_FAILURES: FailureType[] = [
  FailureType.AuthRevoked,
  FailureType.StorageFull,
  FailureType.QuotaExceeded,
  FailureType.ItemRejected,
  FailureType.SourceGone,
];

/** Failures that end an item as `failed` rather than the customer's pipeline. */
export const ITEM_FAILURES: FailureType[] = [FailureType.ItemRejected, FailureType.SourceGone];

/** Details attached to a RateLimited or WriteContention failure. */
export interface ThrottleDetails {
  retryAfterMs: number;
}
