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

/** Opens a small pool; int8 columns (item ids, sizes) come back as strings and are parsed by callers. */
export function createPool(databaseUrl: string, max = 10): pg.Pool {
  const pool = new pg.Pool({ connectionString: databaseUrl, max });
  // An idle client's connection error (e.g. Postgres restarting) must not crash the worker.
  pool.on('error', () => undefined);
  return pool;
}
