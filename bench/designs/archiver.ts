/** The real thing: one archiveCustomer workflow per customer on an in-process worker. */
import { startCustomer } from '../../client/archiver-client.js';
import { statusQuery } from '../../workflows/messages.js';
import { workflowIdFor } from '../../workflows/names.js';
import { createArchiverWorker } from '../../workers/worker.js';
import { loadSecretKeyring } from '../../workers/config.js';
import { mapLimit } from './slots.js';
import { WORKER_SLOTS, type DesignContext, type RunningDesign } from './types.js';
import { archiverDataConverter } from '../../temporal/payload-codec.js';

export async function startArchiver(ctx: DesignContext): Promise<RunningDesign> {
  const { stack } = ctx;
  const { connection, client } = ctx.temporal ?? stack.temporal;
  const taskQueue = `bench-${ctx.tag}`;
  const worker = await createArchiverWorker({
    connection,
    namespace: 'default',
    taskQueue,
    activities: {
      db: ctx.db,
      keyring: loadSecretKeyring(),
      dropboxApiBase: stack.emulator.url,
      liveWindowMs: ctx.liveWindowMs,
    },
    workflowBundle: stack.bundle,
    dataConverter: archiverDataConverter(loadSecretKeyring()),
    shutdownGraceMs: 2_000,
    maxConcurrentActivityTaskExecutions: ctx.slots ?? WORKER_SLOTS,
  });
  const running = worker.run();
  return {
    async add(ids) {
      await mapLimit(ids, 64, (id) =>
        startCustomer(client, id, `Bench ${id}`, {
          taskQueue,
          ...(ctx.commitMode ? { commitMode: ctx.commitMode } : {}),
        }),
      );
    },
    async status(id) {
      return client.workflow
        .getHandle(workflowIdFor(id))
        .query(statusQuery)
        .catch(() => undefined);
    },
    async stop() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
    },
  };
}
