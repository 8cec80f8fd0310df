import pg from 'pg';

/** The narrow interface through which all activity code reaches Postgres. */
export interface Db {
  query<Row extends object>(text: string, values?: readonly unknown[]): Promise<Row[]>;
}

/** A Db over a pg connection pool. */
export function dbFromPool(pool: pg.Pool): Db {
  return {
    async query<Row extends object>(text: string, values?: readonly unknown[]): Promise<Row[]> {
      const result = await pool.query<Row>(text, values as unknown[] | undefined);
      return result.rows;
    },
  };
}

/** Opens a small pool; int8 columns (item ids, sizes) come back as strings and are parsed by callers. */
export function createPool(databaseUrl: string, max = 10): pg.Pool {
  const pool = new pg.Pool({ connectionString: databaseUrl, max });
  // An idle client's connection error (e.g. Postgres restarting) must not crash the worker.
  pool.on('error', () => undefined);
  return pool;
}
