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
  /** The item itself cannot be stored (conflicting content, bad name, source gone). */
  ItemRejected: 'ItemRejected',
  /** The workflow's own input is invalid (an operator or a client sent bad values): nothing to retry. */
  BadInput: 'BadInput',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/** Failures no retry can fix; the upload activity's retry policy stops on these. */
export const NON_RETRYABLE_FAILURES: FailureType[] = [
  FailureType.AuthRevoked,
  FailureType.StorageFull,
  FailureType.ItemRejected,
];

/** Details attached to a RateLimited or WriteContention failure. */
export interface ThrottleDetails {
  retryAfterMs: number;
}
