// What went wrong when Archiver could not use its Postgres, in words an operator can act on: which
// server (never its password), which variable points at it, and whether waiting can help.

/** Where Postgres is, for messages: host, port and database of the URL, never its user or password. */
export function postgresAddress(databaseUrl: string): string {
  try {
    const url = new URL(databaseUrl);
    return `${url.hostname || 'localhost'}:${url.port || '5432'}${url.pathname.length > 1 ? url.pathname : ''}`;
  } catch {
    return '(an unparsable URL)';
  }
}

/** Postgres could not be reached or stopped answering; it may come back, so a worker waits for it. */
export class PostgresUnreachable extends Error {
  override name = 'PostgresUnreachable';
  readonly part = 'Postgres';
  constructor(
    readonly address: string,
    readonly variable: string,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`Postgres at ${address} (${variable}) ${reason}`, options);
  }
}

/** Postgres answered but refused Archiver (credentials, unknown database): a configuration error. */
export class PostgresRejected extends Error {
  override name = 'PostgresRejected';
  constructor(address: string, variable: string, reason: string, options?: ErrorOptions) {
    super(`Postgres at ${address} (${variable}) ${reason}`, options);
  }
}

/** SQLSTATEs of a server that is restarting or out of connections (classes 08 and 57P, and 53300). */
const TRANSIENT_SQLSTATE = /^(08|57P0[123]|53300)/;
const TRANSIENT_ERRNO: Record<string, string> = {
  ECONNREFUSED: 'refused the connection',
  ECONNRESET: 'reset the connection',
  EPIPE: 'closed the connection',
  ETIMEDOUT: 'did not answer (TCP timeout)',
  EHOSTUNREACH: 'is unreachable (no route to host)',
  ENETUNREACH: 'is unreachable (network unreachable)',
  ENOTFOUND: 'has a host name that does not resolve',
  EAI_AGAIN: 'has a host name that does not resolve (yet)',
};

export interface PostgresFailureContext {
  /** @default 'DATABASE_URL' */
  variable?: string;
  /** The connect timeout in force, so a timeout names it. */
  connectTimeoutMs?: number;
}

/**
 * Classifies an error from pg: a PostgresUnreachable or PostgresRejected naming the server and the
 * variable, or `undefined` when the error is not about reaching Postgres (e.g. a failed statement).
 */
export function postgresFailure(
  err: unknown,
  databaseUrl: string,
  { variable = 'DATABASE_URL', connectTimeoutMs }: PostgresFailureContext = {},
): PostgresUnreachable | PostgresRejected | undefined {
  if (err instanceof PostgresUnreachable || err instanceof PostgresRejected) return err;
  if (!(err instanceof Error)) return undefined;
  const address = postgresAddress(databaseUrl);
  const code = (err as { code?: unknown }).code;
  const options = { cause: err };
  if (typeof code === 'string' && code in TRANSIENT_ERRNO) {
    return new PostgresUnreachable(address, variable, TRANSIENT_ERRNO[code] ?? code, options);
  }
  if (/timeout expired|connection timeout/i.test(err.message)) {
    const within =
      connectTimeoutMs === undefined ? '' : ` within ${connectTimeoutMs / 1000}s (DATABASE_CONNECT_TIMEOUT)`;
    return new PostgresUnreachable(address, variable, `did not answer${within}`, options);
  }
  if (/Connection terminated|ended unexpectedly|server closed the connection/i.test(err.message)) {
    return new PostgresUnreachable(address, variable, 'closed the connection', options);
  }
  if (typeof code === 'string' && TRANSIENT_SQLSTATE.test(code)) {
    return new PostgresUnreachable(address, variable, `is not accepting connections: ${err.message}`, options);
  }
  if (code === '28P01' || code === '28000') {
    return new PostgresRejected(address, variable, `rejected the user or password: ${err.message}`, options);
  }
  if (code === '3D000') return new PostgresRejected(address, variable, `has no such database: ${err.message}`, options);
  return undefined;
}
