// How the worker comes up when the parts it needs are not there yet: it waits for Postgres and
// Temporal, saying what it waits for, and stops at once only for what waiting cannot fix.

import { PostgresRejected, PostgresUnreachable } from '../db/connection-failures.js';
import { TemporalRejected, TemporalUnreachable } from '../temporal/connection.js';
import { ConfigError } from './config.js';

/** Exit codes, as the README gives them. */
export const EXIT_FAILURE = 1;
export const EXIT_CONFIGURATION = 2;

/** A failure no retry can fix: a bad variable, or a server that answered and refused us. */
export function isConfigurationError(err: unknown): boolean {
  return err instanceof ConfigError || err instanceof PostgresRejected || err instanceof TemporalRejected;
}

/** The exit code of a process that stops because of `err`. */
export function exitCodeFor(err: unknown): number {
  return isConfigurationError(err) ? EXIT_CONFIGURATION : EXIT_FAILURE;
}

/** A failure as one line for an operator: its message, never a stack. */
export function failureMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Thrown by whenAvailable when the process is asked to stop while it waits. */
export class StartupCancelled extends Error {
  override name = 'StartupCancelled';
}

export interface WaitOptions {
  log: (message: string, fields: Record<string, unknown>) => void;
  /** @default 500 ms */
  initialDelayMs?: number;
  /** @default 10 s */
  maxDelayMs?: number;
  /** Stops the wait with StartupCancelled, e.g. on SIGTERM. */
  signal?: AbortSignal;
}

/**
 * Runs `attempt` until it succeeds. While it fails because Postgres or Temporal cannot be reached,
 * it logs which part, where and why, and tries again with capped exponential backoff; any other
 * failure (a configuration error included) is thrown at once.
 */
export async function whenAvailable<T>(attempt: () => Promise<T>, options: WaitOptions): Promise<T> {
  const { log, initialDelayMs = 500, maxDelayMs = 10_000, signal } = options;
  let delayMs = initialDelayMs;
  let waited: PostgresUnreachable | TemporalUnreachable | undefined;
  for (;;) {
    if (signal?.aborted) throw new StartupCancelled('stopped while waiting for Postgres and Temporal');
    try {
      const result = await attempt();
      if (waited) log(`${waited.part} is available`, { part: waited.part, address: waited.address });
      return result;
    } catch (err) {
      if (!(err instanceof PostgresUnreachable || err instanceof TemporalUnreachable)) throw err;
      waited = err;
      log(`${err.message}; waiting ${delayMs / 1000}s before trying again`, {
        part: err.part,
        address: err.address,
        variable: err.variable,
        reason: err.reason,
        retryInMs: delayMs,
      });
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, delayMs);
      function done(): void {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      }
      signal?.addEventListener('abort', done);
    });
    delayMs = Math.min(delayMs * 2, maxDelayMs);
  }
}
