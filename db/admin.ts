// Server administration for the embedded development stack (dev/postgres.ts).

import pg from 'pg';

/** Names createDatabaseIfMissing accepts: plain identifiers, so no quoting surprises. */
const DB_NAME_RE = /^[a-z_][a-z0-9_]*$/;

/**
 * Creates database `name` on the server `adminUrl` points at, unless it exists; safe when two
 * processes create it at once.
 */
export async function createDatabaseIfMissing(adminUrl: string, name: string): Promise<void> {
  if (!DB_NAME_RE.test(name)) {
    throw new Error(`Invalid database name ${JSON.stringify(name)}: must match ${DB_NAME_RE}`);
  }
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount === 0) {
      try {
        await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
      } catch (err) {
        if ((err as { code?: string }).code !== '42P04') throw err; // created concurrently
      }
    }
  } finally {
    await client.end();
  }
}
