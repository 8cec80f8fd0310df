import { expect, it } from 'vitest';
import { createPool } from '../../db/pool.js';

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
