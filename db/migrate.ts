import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { postgresFailure } from './connection-failures.js';
import { connectionConfig, DEFAULT_POSTGRES_TIMEOUTS, type PostgresTimeouts } from './pool.js';

const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));
const MIGRATION_FILE = /^(\d{3})_[a-z0-9_]+\.sql$/;

/**
 * Applies the numbered SQL files in db/migrations that the database has not seen, each in its own
 * transaction, recording them in `schema_migrations`. An advisory lock keeps two processes that
 * start together from applying the same file twice.
 * @returns the names of the migrations applied now
 * @throws PostgresUnreachable (worth waiting for) or PostgresRejected when it cannot reach or use the server
 */
export async function migrate(
  databaseUrl: string,
  timeouts: PostgresTimeouts = DEFAULT_POSTGRES_TIMEOUTS,
): Promise<string[]> {
  const files = (await readdir(MIGRATIONS_DIR)).filter((f) => MIGRATION_FILE.test(f)).sort();
  // A migration may rightly run long, and the advisory lock waits for another process's: only
  // connecting is bounded. Each file is its own transaction, so a run cut short is safe to repeat.
  const client = new pg.Client(connectionConfig(databaseUrl, { ...timeouts, statementTimeoutMs: 0 }));
  // A connection that drops mid-run rejects the query in flight; without a listener it would crash the process.
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT pg_advisory_lock(hashtext($1))', ['archiver.migrate']);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set(
      (await client.query<{ name: string }>('SELECT name FROM schema_migrations')).rows.map((r) => r.name),
    );
    const applied: string[] = [];
    for (const file of files) {
      if (done.has(file)) continue;
      const sql = await readFile(MIGRATIONS_DIR + file, 'utf8');
      await client.query('BEGIN');
      try {
        await client.query(sql);
        await client.query('INSERT INTO schema_migrations (name) VALUES ($1)', [file]);
        await client.query('COMMIT');
      } catch (err) {
        if (postgresFailure(err, databaseUrl)) throw err;
        await client.query('ROLLBACK');
        throw new Error(`migration ${file} failed: ${(err as Error).message}`, { cause: err });
      }
      applied.push(file);
    }
    return applied;
  } catch (err) {
    throw postgresFailure(err, databaseUrl, timeouts) ?? err;
  } finally {
    await client.end().catch(() => undefined);
  }
}
