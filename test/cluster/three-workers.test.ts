// The production topology, run for real: a Temporal Server v1.32.0 on Postgres (not the dev
// server), three Archiver worker processes, the emulator and the media server. Run by
// `npm run test:cluster`; the first run builds the server (dev/temporal-cluster.ts).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDropboxEmulator, type DropboxEmulator } from 'dropbox-emulator';
import type { Client } from '@temporalio/client';
import { startCustomer } from '../../client/archiver-client.js';
import { upsertCustomer } from '../../db/customers.js';
import { migrate } from '../../db/migrate.js';
import { createPool, dbFromPool, type Db } from '../../db/pool.js';
import { startMediaServer, type MediaServer } from '../../dev/media-server.js';
import { EMBEDDED_POSTGRES_PASSWORD, startEmbeddedPostgres, type RunningPostgres } from '../../dev/postgres.js';
import { resolveTemporalServer, startTemporalCluster, type TemporalCluster } from '../../dev/temporal-cluster.js';
import { connectClient } from '../../temporal/connection.js';
import { ensureSearchAttributes } from '../../temporal/search-attributes.js';
import { writeWorkflowBundle } from '../../workers/bundle.js';
import { workflowIdFor } from '../../workflows/names.js';
import { insertItems } from '../support/items.js';
import { spawnWorkerProcess, type WorkerProcess } from '../support/worker-process.js';
import type pg from 'pg';

const CUSTOMERS = ['c1', 'c2', 'c3'];
const ITEMS = 1_000;
const RATE = 20;
const tokenOf = (id: string) => `cluster-token-${id}`;

let postgres: RunningPostgres;
let temporal: TemporalCluster;
let client: Client;
let emulator: DropboxEmulator;
let media: MediaServer;
let pool: pg.Pool;
let db: Db;
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'archiver-cluster-'));
  const log = (line: string) => console.log(`[cluster test] ${line}`);
  const binaries = await resolveTemporalServer({ log });
  postgres = await startEmbeddedPostgres({ dataDir: join(dir, 'postgres') });
  temporal = await startTemporalCluster({
    binaries,
    postgres: { host: '127.0.0.1', port: postgres.port, user: 'postgres', password: EMBEDDED_POSTGRES_PASSWORD },
    dataDir: join(dir, 'temporal'),
    log,
  });
  client = await connectClient({ address: temporal.address, namespace: 'default' });
  await ensureSearchAttributes(client);
  const databaseUrl = await postgres.createDatabase('archiver');
  await migrate(databaseUrl);
  pool = createPool(databaseUrl, 4);
  db = dbFromPool(pool);
  emulator = await startDropboxEmulator({
    accounts: CUSTOMERS.map((id) => ({ token: tokenOf(id), accountId: id })),
    uploadsPerSecond: RATE,
    keepContent: false,
  });
  media = await startMediaServer();
  const bundle = await writeWorkflowBundle(join(dir, 'workflow-bundle.js'), { quiet: true });
  for (let i = 0; i < 3; i++) {
    workers.push(
      spawnWorkerProcess({
        TEMPORAL_ADDRESS: temporal.address,
        DATABASE_URL: databaseUrl,
        DROPBOX_API_BASE: emulator.url,
        ARCHIVER_WORKFLOW_BUNDLE: bundle,
      }),
    );
  }
  await Promise.all(workers.map((w) => w.started));
}, 30 * 60_000);

afterAll(async () => {
  for (const w of workers) w.child.kill('SIGKILL');
  await client?.connection.close();
  await pool?.end();
  await Promise.allSettled([emulator?.stop(), media?.stop()]);
  await temporal?.stop();
  await postgres?.stop();
});

describe('a Temporal Server on Postgres with three workers', () => {
  it(
    'drains 3 customers × 1,000 items over all three workers, each customer at its own pace',
    async () => {
      for (const id of CUSTOMERS) {
        await upsertCustomer(db, { id, name: `Cluster ${id}`, accessToken: tokenOf(id) });
        await insertItems(db, id, tokenOf(id), media.url, ITEMS, { bytes: 1_000 });
      }
      const started = Date.now();
      for (const id of CUSTOMERS) await startCustomer(client, id, `Cluster ${id}`);
      const deadline = started + 5 * 60_000;
      for (;;) {
        const [row] = await db.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM archive_items WHERE state = 'archived' AND customer_id = ANY($1)",
          [CUSTOMERS],
        );
        if (row?.n === CUSTOMERS.length * ITEMS) break;
        if (Date.now() > deadline) throw new Error(`only ${row?.n} of ${CUSTOMERS.length * ITEMS} archived in 5 min`);
        await new Promise((r) => setTimeout(r, 1_000));
      }
      const seconds = (Date.now() - started) / 1000;
      // Every upload went to the emulator once per item, with few 429s: pacing holds on a real cluster.
      let requests = 0;
      let refused = 0;
      for (const id of CUSTOMERS) {
        for (const [route, n] of Object.entries(emulator.stats().accounts[id]?.requests ?? {})) {
          if (!route.startsWith('/2/files/upload')) continue;
          requests += n;
          if (route.endsWith(' 429')) refused += n;
        }
      }
      expect(refused / requests).toBeLessThan(0.01);
      // The uploads ran on all three workers, as the histories' activity-started identities show.
      const identities = new Map<string, number>();
      for (const id of CUSTOMERS) {
        for await (const run of client.workflow.list({ query: `WorkflowId = '${workflowIdFor(id)}'` })) {
          const history = await client.workflow.getHandle(workflowIdFor(id), run.runId).fetchHistory();
          for (const e of history.events ?? []) {
            const identity = e.activityTaskStartedEventAttributes?.identity;
            if (identity) identities.set(identity, (identities.get(identity) ?? 0) + 1);
          }
        }
      }
      console.log(
        `cluster: ${CUSTOMERS.length * ITEMS} items in ${seconds.toFixed(1)} s (${((CUSTOMERS.length * ITEMS) / seconds).toFixed(1)} items/s), ` +
          `429 share ${((100 * refused) / requests).toFixed(2)}%, activities per worker ${[...identities.values()].join(' / ')}`,
      );
      expect(identities.size).toBe(3);
      for (const n of identities.values()) expect(n).toBeGreaterThan(100);
    },
    6 * 60_000,
  );
});
