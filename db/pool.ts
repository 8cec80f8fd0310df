import pg from 'pg';

/** The narrow interface through which all of Archiver reaches Postgres; every statement lives in db/. */
export interface Db {
  query<Row extends object>(text: string, values?: readonly unknown[]): Promise<Row[]>;
  /** Runs `work` in one transaction on one connection; commits if it resolves, rolls back if it throws. */
  transaction<T>(work: (tx: Db) => Promise<T>): Promise<T>;
}

type Queryable = Pick<pg.Pool | pg.PoolClient, 'query'>;

function queryOn(target: Queryable) {
  return async <Row extends object>(text: string, values?: readonly unknown[]): Promise<Row[]> => {
    const result = await target.query<Row>(text, values as unknown[] | undefined);
    return result.rows;
  };
}

/** A Db over a pg connection pool. */
export function dbFromPool(pool: pg.Pool): Db {
  return {
    query: queryOn(pool),
    async transaction<T>(work: (tx: Db) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      const tx: Db = {
        query: queryOn(client),
        transaction: () => Promise.reject(new Error('nested transactions are not supported')),
      };
      try {
        await client.query('BEGIN');
        const result = await work(tx);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },
  };
}

/** A Db over one dedicated connection, such as a listening one; transactions need a pool. */
export function dbFromConnection(connection: pg.ClientBase): Db {
  return {
    query: queryOn(connection),
    transaction: () => Promise.reject(new Error('transactions need a pool: use dbFromPool')),
  };
}

/** Where a pool reports trouble; the worker passes Temporal's runtime logger, whose lines are JSON. */
export interface PoolLogger {
  warn(message: string, meta?: Record<string, unknown>): void;
}

/** One JSON line on stderr, in the worker's log format, for processes without a runtime logger. */
const stderrLogger: PoolLogger = {
  warn(message, meta) {
    console.error(JSON.stringify({ time: new Date().toISOString(), level: 'warn', message, ...meta }));
  },
};

/** An error's message with any connection string in it cut out, so no password reaches a log. */
function safeMessage(err: Error): string {
  return err.message.replace(/postgres(ql)?:\/\/\S+/gi, 'postgres://…');
}

/** How long Archiver waits on Postgres, so that a server that accepts TCP and never answers cannot hang it. */
export interface PostgresTimeouts {
  /** From opening the socket to the server being ready for queries. @default 10 s */
  connectTimeoutMs: number;
  /** Per statement; the server cancels it (statement_timeout) and the client gives up shortly after. 0 disables both. @default 30 s */
  statementTimeoutMs: number;
}

export const DEFAULT_POSTGRES_TIMEOUTS: PostgresTimeouts = { connectTimeoutMs: 10_000, statementTimeoutMs: 30_000 };

/** How long the client waits past statement_timeout for the server's own cancellation to arrive. */
const QUERY_TIMEOUT_MARGIN_MS = 2_000;

/**
 * pg client settings for `databaseUrl` under `timeouts`. TCP keepalive notices a peer that vanished
 * (a dead host, a dropped NAT entry) on connections that sit idle, such as the notifier's.
 */
export function connectionConfig(
  databaseUrl: string,
  timeouts: PostgresTimeouts = DEFAULT_POSTGRES_TIMEOUTS,
): pg.ClientConfig {
  const statement = timeouts.statementTimeoutMs;
  return {
    connectionString: databaseUrl,
    connectionTimeoutMillis: timeouts.connectTimeoutMs,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    ...(statement > 0 ? { statement_timeout: statement, query_timeout: statement + QUERY_TIMEOUT_MARGIN_MS } : {}),
  };
}

/**
 * Opens a small pool; int8 columns (item ids, sizes) come back as strings and are parsed by callers.
 * An idle client's connection error (e.g. Postgres restarting) is logged to `logger` and must not
 * crash the process; the pool replaces the client.
 */
export function createPool(
  databaseUrl: string,
  max = 10,
  logger: PoolLogger = stderrLogger,
  timeouts: PostgresTimeouts = DEFAULT_POSTGRES_TIMEOUTS,
): pg.Pool {
  const pool = new pg.Pool({ ...connectionConfig(databaseUrl, timeouts), max });
  pool.on('error', (err) => {
    logger.warn('database connection error in the pool', {
      error: safeMessage(err),
      code: (err as { code?: string }).code,
    });
  });
  return pool;
}
