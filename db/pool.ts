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

/**
 * Opens a small pool; int8 columns (item ids, sizes) come back as strings and are parsed by callers.
 * An idle client's connection error (e.g. Postgres restarting) is logged to `logger` and must not
 * crash the process; the pool replaces the client.
 */
export function createPool(databaseUrl: string, max = 10, logger: PoolLogger = stderrLogger): pg.Pool {
  const pool = new pg.Pool({ connectionString: databaseUrl, max });
  pool.on('error', (err) => {
    logger.warn('database connection error in the pool', {
      error: safeMessage(err),
      code: (err as { code?: string }).code,
    });
  });
  return pool;
}
