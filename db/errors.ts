import pg from 'pg';
import type { Db } from './pool.js';

/**
 * Postgres failed a statement or could not be reached. Activities report it as Postgres's failure,
 * never as the Dropbox or source call they were in the middle of.
 */
export class PostgresError extends Error {
  override name = 'PostgresError';
  /** The SQLSTATE (57P01: the server is shutting down) or the socket error code (ECONNREFUSED). */
  readonly code: string | undefined;
  constructor(cause: unknown) {
    const err = cause instanceof Error ? cause : new Error(String(cause));
    const code = (err as { code?: unknown }).code;
    super(`Postgres failed: ${withoutConnectionString(err.message)}${typeof code === 'string' ? ` (${code})` : ''}`, {
      cause,
    });
    this.code = typeof code === 'string' ? code : undefined;
  }
}

/** An error's message with any connection string cut out, so no password reaches a log. */
export function withoutConnectionString(message: string): string {
  return message.replace(/postgres(ql)?:\/\/\S+/gi, 'postgres://…');
}

const CONNECTION_FAILURE =
  /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|Connection terminated|timeout exceeded when trying to connect/i;

/** Whether `err` came from Postgres or the connection to it (not from code run inside a transaction). */
function isPostgresFailure(err: unknown): boolean {
  if (err instanceof PostgresError || err instanceof pg.DatabaseError) return true;
  const code = (err as { code?: unknown }).code;
  return err instanceof Error && (CONNECTION_FAILURE.test(err.message) || CONNECTION_FAILURE.test(String(code)));
}

/** `db`, with every failure of Postgres itself thrown as a PostgresError. */
export function reportingPostgresErrors(db: Db): Db {
  const wrap = (err: unknown): never => {
    throw err instanceof PostgresError ? err : new PostgresError(err);
  };
  return {
    query: <Row extends object>(text: string, values?: readonly unknown[]) => db.query<Row>(text, values).catch(wrap),
    transaction: (work) =>
      db
        .transaction((tx) => work(reportingPostgresErrors(tx)))
        .catch((err: unknown) => {
          throw isPostgresFailure(err) && !(err instanceof PostgresError) ? new PostgresError(err) : err;
        }),
  };
}
