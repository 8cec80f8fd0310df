// The production topology, run for real: a Temporal Server v1.32.0 on Postgres (not the dev
// server), three Archiver worker processes, the emulator, the media server and the standalone Web
// UI. Run by `npm run test:cluster`; the first run builds the server (dev/temporal-cluster.ts).
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveTemporalUi, startTemporalUi, type TemporalUi } from '../../dev/temporal-ui.js';
import { temporal as proto } from '@temporalio/proto';
import type { DropboxEmulator } from 'dropbox-emulator';
import { DEFAULT_PACING_LIMITS } from '../../workflows/pacing/controller.js';
import { TASK_QUEUE, workflowIdFor } from '../../workflows/names.js';
import { identityOf, startClusterStack, uploadAnswers, workerEvents, type ClusterStack } from '../support/cluster.js';

const CUSTOMERS = ['c1', 'c2', 'c3'];
const ITEMS = 1_000;

/** A customer has left slow start this long after its first 429. */
const SLOW_START_EXIT_MS = 5_000;

/**
 * Each customer's upload answers as of SLOW_START_EXIT_MS after its first 429, polled while the
 * drain runs: leaving slow start, the uploads in flight when the bucket ran dry (up to W) all meet
 * it, and on a loaded machine W is wider (uploads take longer); after that, pacing holds.
 */
function answersLeavingSlowStart(emulator: DropboxEmulator, customers: string[]) {
  const firstAt = new Map<string, number>();
  const exited = new Map<string, { requests: number; refused: number }>();
  const timer = setInterval(() => {
    for (const id of customers) {
      const answers = uploadAnswers(emulator, [id]);
      if (exited.has(id) || answers.refused === 0) continue;
      const first = firstAt.get(id) ?? Date.now();
      firstAt.set(id, first);
      if (Date.now() - first >= SLOW_START_EXIT_MS) exited.set(id, answers);
    }
  }, 100);
  timer.unref();
  return { exited, stop: () => clearInterval(timer) };
}

let stack: ClusterStack;
let ui: TemporalUi;

beforeAll(async () => {
  stack = await startClusterStack({ customers: CUSTOMERS, rate: 20, workers: 3 });
  ui = await startTemporalUi({
    binary: await resolveTemporalUi({ log: (line) => console.log(`[cluster test] ${line}`) }),
    temporalAddress: stack.temporal.address,
    dataDir: join(stack.dir, 'ui'),
  });
}, 30 * 60_000);

afterAll(async () => {
  await ui?.stop();
  await stack?.stop();
});

describe('a Temporal Server on Postgres with three workers', () => {
  it(
    'drains 3 customers × 1,000 items on three workers, each customer at its own pace',
    async () => {
      const started = Date.now();
      const slowStart = answersLeavingSlowStart(stack.emulator, CUSTOMERS);
      await stack.seedAndStart(CUSTOMERS, ITEMS);
      await stack.untilArchived(CUSTOMERS, CUSTOMERS.length * ITEMS, 5 * 60_000);
      slowStart.stop();
      const seconds = (Date.now() - started) / 1000;
      // Every upload went to the emulator once per item, with few 429s: pacing holds on a real cluster.
      // Each customer met its limit leaving slow start, with at most one 429 per upload in flight.
      // After that, about one per probe of its limit: since the quiet-probes patch a 429 is no
      // longer followed by more from the customer's other slices, planned at the pace that met it.
      // (Runs here: 0.37% to 1.06% over the whole run, leaving slow start costing a customer 1 to
      // 11 429s, more on a loaded machine; 0.21% to 0.41% after it.)
      const { requests, refused } = uploadAnswers(stack.emulator, CUSTOMERS);
      let paced = { requests: 0, refused: 0 };
      for (const id of CUSTOMERS) {
        const exit = slowStart.exited.get(id);
        expect(exit, `${id} met its limit`).toBeDefined();
        expect(exit?.refused).toBeLessThanOrEqual(DEFAULT_PACING_LIMITS.maxConcurrency);
        const end = uploadAnswers(stack.emulator, [id]);
        paced = {
          requests: paced.requests + end.requests - (exit?.requests ?? 0),
          refused: paced.refused + end.refused - (exit?.refused ?? 0),
        };
      }
      expect(paced.refused / paced.requests).toBeLessThan(0.01);
      // All three workers poll for uploads, and the uploads ran on more than one of them, as the
      // identities on the histories' activity results show. An upload activity carries a slice of
      // up to 50 items, so 3,000 items take only about 200 activities, and how the server hands
      // them out is up to its matching: runs here split them 58 / 118 / 8, 112 / 65 / 4 and once
      // 170 / 3 / 0, so no share per worker is promised.
      const { pollers } = await stack.client.workflowService.describeTaskQueue({
        namespace: 'default',
        taskQueue: { name: TASK_QUEUE },
        taskQueueType: proto.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
      });
      expect(new Set(pollers?.map((p) => p.identity))).toEqual(new Set(stack.workers.map(identityOf)));
      const identities = new Map<string, number>();
      for (const { kind, identity } of await workerEvents(stack.client, CUSTOMERS))
        if (kind === 'activity') identities.set(identity, (identities.get(identity) ?? 0) + 1);
      console.log(
        `cluster: ${CUSTOMERS.length * ITEMS} items in ${seconds.toFixed(1)} s (${((CUSTOMERS.length * ITEMS) / seconds).toFixed(1)} items/s), ` +
          `429 share ${((100 * refused) / requests).toFixed(2)}% (after slow start ${((100 * paced.refused) / paced.requests).toFixed(2)}%), activities per worker ${[...identities.values()].join(' / ')}`,
      );
      expect([...identities.values()].filter((n) => n >= 2).length).toBeGreaterThanOrEqual(2);
      for (const identity of identities.keys()) expect(stack.workers.map(identityOf)).toContain(identity);
    },
    6 * 60_000,
  );

  it("serves the Web UI, whose API lists the namespace's customer workflows from this cluster", async () => {
    const page = await fetch(`${ui.url}/namespaces/default/workflows`, { signal: AbortSignal.timeout(10_000) });
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<html/i);
    const res = await fetch(`${ui.url}/api/v1/namespaces/default/workflows`, { signal: AbortSignal.timeout(10_000) });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { executions?: { execution?: { workflowId?: string } }[] };
    // Every run is listed, continued-as-new ones too: each customer's workflow id at least once.
    const ids = new Set((body.executions ?? []).map((e) => e.execution?.workflowId));
    expect([...ids].sort()).toEqual(CUSTOMERS.map(workflowIdFor));
  });
});
