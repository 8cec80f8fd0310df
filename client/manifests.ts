import type { Client } from '@temporalio/client';
import type { Command } from 'commander';
import { getCustomer } from '../db/customers.js';
import type { Db } from '../db/pool.js';
import { CustomerRefused, OperatorError } from './archiver-client.js';
import { manifestsWorkflowIdFor, TASK_QUEUE } from '../workflows/names.js';
import { writeDayManifests, type ManifestsResult } from '../workflows/write-manifests.js';

/**
 * Writes the customer's due day manifests now (through the worker, which holds its Dropbox), or
 * joins a write `archiver manifests` started already; resolves with what was written.
 */
export async function writeManifestsNow(
  client: Client,
  customerId: string,
  options: { taskQueue?: string } = {},
): Promise<ManifestsResult> {
  const handle = await client.workflow.start(writeDayManifests, {
    taskQueue: options.taskQueue ?? TASK_QUEUE,
    workflowId: manifestsWorkflowIdFor(customerId),
    args: [{ customerId }],
    workflowIdConflictPolicy: 'USE_EXISTING',
    staticSummary: `Writing the day manifests of ${customerId}`,
  });
  return handle.result();
}

/** What `archiver manifests` prints: one line per manifest written, or why there is none. */
export function formatManifests(customerId: string, result: ManifestsResult): string[] {
  if (!result.enabled)
    return [`${customerId}: day manifests are off (customers add ${customerId} --manifests turns them on)`];
  if (result.written.length === 0) return [`${customerId}: no day manifest is due`];
  return result.written.map(
    (w) => `${customerId}: wrote ${w.path} (${w.day}, ${w.items} items, content hash ${w.contentHash})`,
  );
}

/** Registers `archiver manifests <id>`. */
export function registerManifests(
  program: Command,
  withDb: <T>(fn: (db: Db) => Promise<T>) => Promise<T>,
  withClient: <T>(fn: (client: Client) => Promise<T>) => Promise<T>,
  customerId: (value: string) => string,
): void {
  program
    .command('manifests')
    .argument('<id>', 'customer id', customerId)
    .description(
      "Write a customer's due day manifests now (<folder root>/manifests/<YYYY-MM-DD>.csv for each day of its time zone that is over, has nothing pending, and changed since its manifest was written), and print them. The daily verification does the same after it has verified.",
    )
    .action(async (id: string) => {
      await withDb((db) =>
        withClient(async (client) => {
          if (!(await getCustomer(db, id)))
            throw new OperatorError(`unknown customer "${id}" (add it with: archiver customers add ${id} --name …)`);
          const result = await writeManifestsNow(client, id).catch((err: unknown) => {
            let cause = err as Error;
            while (cause.cause instanceof Error) cause = cause.cause;
            throw new CustomerRefused(`writing the day manifests of ${id} failed: ${cause.message}`);
          });
          for (const line of formatManifests(id, result)) console.log(line);
        }),
      );
    });
}
