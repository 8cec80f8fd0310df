// How a process that cannot start says so: one line naming what failed, and the README's exit code.

import { PostgresRejected } from '../db/connection-failures.js';
import { TemporalRejected } from '../temporal/connection.js';
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
