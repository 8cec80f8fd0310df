import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { PostgresUnreachable } from '../../db/connection-failures.js';
import { migrate } from '../../db/migrate.js';
import { createPool } from '../../db/pool.js';
import { silentServer } from '../support/tcp.js';

it("logs an idle client's connection error instead of swallowing it, without the connection string", async () => {
  const seen: { message: string; meta?: Record<string, unknown> }[] = [];
  const pool = createPool('postgres://archiver:hunter2@127.0.0.1:1/archiver', 1, {
    warn: (message, meta) => seen.push({ message, meta }),
  });
  pool.emit(
    'error',
    Object.assign(new Error('terminating connection of postgres://archiver:hunter2@127.0.0.1:1/archiver'), {
      code: '57P01',
    }),
  );
  expect(seen).toEqual([
    {
      message: 'database connection error in the pool',
      meta: { error: 'terminating connection of postgres://…', code: '57P01' },
    },
  ]);
  expect(JSON.stringify(seen)).not.toContain('hunter2');
  await pool.end();
});

describe('timeouts, so that no Postgres can hang Archiver', () => {
  let silent: Awaited<ReturnType<typeof silentServer>>;
  beforeAll(async () => {
    silent = await silentServer();
  });
  afterAll(async () => {
    await silent?.close();
  });
  const quick = { connectTimeoutMs: 500, statementTimeoutMs: 300 };

  it('gives up connecting to a server that accepts TCP and never answers', async () => {
    const pool = createPool(`postgres://archiver:hunter2@${silent.address}/archiver`, 1, undefined, quick);
    const started = Date.now();
    await expect(pool.query('SELECT 1')).rejects.toThrow(/timeout/i);
    expect(Date.now() - started).toBeLessThan(3_000);
    await pool.end();
  });

  it('says which server did not answer, and which variable points at it, when migrating', async () => {
    const err = await migrate(`postgres://archiver:hunter2@${silent.address}/archiver`, quick).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PostgresUnreachable);
    expect((err as Error).message).toBe(
      `Postgres at ${silent.address}/archiver (DATABASE_URL) did not answer within 0.5s (DATABASE_CONNECT_TIMEOUT)`,
    );
  });

  it('cancels a statement that runs past the statement timeout', async () => {
    const pool = createPool(inject('postgresUrl'), 1, undefined, quick);
    await expect(pool.query('SELECT pg_sleep(5)')).rejects.toThrow(/statement timeout/);
    await pool.end();
  });
});
