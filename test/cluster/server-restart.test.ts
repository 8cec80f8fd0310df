// The Temporal Server restarted mid-drain (stopped, down for 10 s, then started again with the same
// config and ports): the workers ride it out and the drain finishes by itself, every item archived exactly once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectArchivedExactlyOnce } from '../support/verify.js';
import { workflowIdFor } from '../../workflows/names.js';
import { startClusterStack, type ClusterStack } from '../support/cluster.js';

const CUSTOMERS = ['r1', 'r2', 'r3'];
const ITEMS = 400;

let stack: ClusterStack;

beforeAll(async () => {
  stack = await startClusterStack({ customers: CUSTOMERS, rate: 10, workers: 3 });
}, 30 * 60_000);

afterAll(async () => {
  await stack?.stop();
});

describe('the Temporal Server restarted mid-drain', () => {
  it(
    'lets the drain resume by itself, with nothing lost or duplicated',
    async () => {
      const total = CUSTOMERS.length * ITEMS;
      const started = Date.now();
      await stack.seedAndStart(CUSTOMERS, ITEMS);
      await stack.untilArchived(CUSTOMERS, total / 4, 2 * 60_000);
      const oldServer = stack.temporal.child.pid;
      const stoppedAt = Date.now();
      // Down for longer than an upload's heartbeat timeout (8 s), so in-flight activities lose it.
      await stack.temporal.restart({ downForMs: 10_000 });
      const downSeconds = (Date.now() - stoppedAt) / 1000;
      expect(stack.temporal.child.pid).not.toBe(oldServer);
      const archivedAtRestart = await stack.archived(CUSTOMERS);
      expect(archivedAtRestart).toBeLessThan(total * 0.8);

      // No operator action: the workers reconnect and the workflows carry on from their histories.
      await stack.untilArchived(CUSTOMERS, total, 3 * 60_000);
      const seconds = (Date.now() - started) / 1000;
      for (const w of stack.workers) expect(w.child.exitCode).toBeNull();
      expect(
        await expectArchivedExactlyOnce(
          stack.db,
          stack.emulator,
          CUSTOMERS.map((id) => ({ id, accountId: id })),
        ),
      ).toBe(total);
      // The customers' workflows are still running on the restarted server.
      for (const id of CUSTOMERS) {
        const description = await stack.client.workflow.getHandle(workflowIdFor(id)).describe();
        expect(description.status.name).toBe('RUNNING');
      }
      console.log(
        `server restart: ${archivedAtRestart}/${total} archived when it was back after ${downSeconds.toFixed(1)} s; ` +
          `all ${total} archived ${seconds.toFixed(1)} s after the start`,
      );
    },
    8 * 60_000,
  );
});
