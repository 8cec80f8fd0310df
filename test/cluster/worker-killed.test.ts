// A worker process SIGKILLed mid-drain and never restarted: the two left finish the drain, every
// item archived exactly once, and the killed worker's customer workflows move to them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectArchivedExactlyOnce } from '../support/verify.js';
import { identityOf, startClusterStack, workerEvents, type ClusterStack } from '../support/cluster.js';

const CUSTOMERS = ['k1', 'k2', 'k3'];
const ITEMS = 400;

let stack: ClusterStack;

beforeAll(async () => {
  stack = await startClusterStack({ customers: CUSTOMERS, rate: 10, workers: 3 });
}, 30 * 60_000);

afterAll(async () => {
  await stack?.stop();
});

describe('a worker SIGKILLed mid-drain, never restarted', () => {
  it(
    'leaves the other two to finish with nothing lost or duplicated, taking over its workflows',
    async () => {
      const total = CUSTOMERS.length * ITEMS;
      const started = Date.now();
      await stack.seedAndStart(CUSTOMERS, ITEMS);
      await stack.untilArchived(CUSTOMERS, total / 4, 2 * 60_000);
      // The victim is the worker that last ran a workflow task of some customer: its cached (sticky) owner.
      const before = await workerEvents(stack.client, CUSTOMERS);
      const owner = new Map<string, string>();
      for (const e of before.filter((e) => e.kind === 'workflow-task').sort((a, b) => a.at - b.at))
        owner.set(e.customerId, e.identity);
      const victim = stack.workers.find((w) => [...owner.values()].includes(identityOf(w)));
      expect(victim).toBeDefined();
      if (!victim) return;
      const victimId = identityOf(victim);
      const owned = CUSTOMERS.filter((id) => owner.get(id) === victimId);
      const survivors = stack.workers.filter((w) => w !== victim).map(identityOf);
      victim.child.kill('SIGKILL');
      const killedAt = Date.now();
      await victim.exited;
      const archivedAtKill = await stack.archived(CUSTOMERS);
      expect(archivedAtKill).toBeLessThan(total * 0.8);

      await stack.untilArchived(CUSTOMERS, total, 3 * 60_000);
      const seconds = (Date.now() - started) / 1000;
      expect(victim.child.signalCode).toBe('SIGKILL');
      for (const w of stack.workers.filter((w) => w !== victim)) expect(w.child.exitCode).toBeNull();
      // Each item exactly once: one file per item at its recorded path, written once, with its bytes.
      expect(
        await expectArchivedExactlyOnce(
          stack.db,
          stack.emulator,
          CUSTOMERS.map((id) => ({ id, accountId: id })),
        ),
      ).toBe(total);

      const after = (await workerEvents(stack.client, CUSTOMERS)).filter((e) => e.at > killedAt + 1_000);
      // Nothing completed on the dead worker; the survivors ran both workflow tasks and uploads after the kill.
      expect(after.filter((e) => e.identity === victimId)).toEqual([]);
      for (const id of survivors) {
        expect(after.filter((e) => e.identity === id && e.kind === 'activity').length).toBeGreaterThan(0);
      }
      // The workflows it held moved: each one's later workflow tasks ran on a survivor.
      for (const customerId of owned) {
        const tasks = after.filter((e) => e.customerId === customerId && e.kind === 'workflow-task');
        expect(tasks.length).toBeGreaterThan(0);
        for (const t of tasks) expect(survivors).toContain(t.identity);
      }
      console.log(
        `worker killed: ${victimId} (owner of ${owned.join(', ')}) killed at ${archivedAtKill}/${total} archived; ` +
          `the other two finished in ${seconds.toFixed(1)} s in all; after the kill, completions per survivor ` +
          survivors.map((id) => after.filter((e) => e.identity === id).length).join(' / '),
      );
    },
    8 * 60_000,
  );
});
