import type { Worker } from '@temporalio/worker';
import { afterAll, beforeAll } from 'vitest';
import { startDropboxEmulator, type DropboxEmulator, type EmulatorOptions } from 'dropbox-emulator';
import { startMediaServer, type MediaServer } from '../../dev/media-server.js';
import { startTestWorker, type TestActivityDeps } from './harness.js';
import type { ProcessTestNamespace } from './namespaces.js';
import { connectTemporal, freshDatabase, type TestDatabase, type TestTemporal } from './stack.js';

export interface ArchiverStack {
  database: TestDatabase;
  temporal: TestTemporal;
  emulator: DropboxEmulator;
  media: MediaServer;
  /** The in-process worker, unless the file asked for none. */
  worker: Worker | undefined;
}

export interface ArchiverStackOptions {
  emulator?: EmulatorOptions;
  /** The namespace; files that run worker processes on the production task queue need their own. @default 'default' */
  namespace?: ProcessTestNamespace | 'default';
  /**
   * The task queue of the stack's worker and of `temporal.taskQueue`: files whose commands start
   * workflows on the production queue (TASK_QUEUE) give it, with a namespace of their own.
   * @default a unique one per file
   */
  taskQueue?: string;
  /**
   * An in-process worker on the file's task queue, with these activity options beside the
   * stack's database and emulator; false for none (the file runs worker processes itself).
   * @default {}
   */
  worker?: Partial<TestActivityDeps> | false;
}

/**
 * The stack most system tests need, started before the file's tests and stopped after them: a
 * fresh database, a Temporal connection, the Dropbox emulator, the media server and a worker.
 * Its fields are set once the file's beforeAll has run.
 */
export function useArchiverStack(options: ArchiverStackOptions = {}): ArchiverStack {
  const stack = {} as ArchiverStack;
  let stopWorker: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    [stack.database, stack.temporal, stack.emulator, stack.media] = await Promise.all([
      freshDatabase(),
      connectTemporal(options.namespace),
      startDropboxEmulator(options.emulator),
      startMediaServer(),
    ]);
    if (options.taskQueue !== undefined) stack.temporal = { ...stack.temporal, taskQueue: options.taskQueue };
    if (options.worker !== false) {
      ({ worker: stack.worker, stop: stopWorker } = await startTestWorker(stack.temporal, {
        db: stack.database.db,
        dropboxApiBase: stack.emulator.url,
        ...options.worker,
      }));
    }
  });
  afterAll(async () => {
    await stopWorker?.();
    await Promise.allSettled([
      stack.temporal?.close(),
      stack.database?.close(),
      stack.emulator?.stop(),
      stack.media?.stop(),
    ]);
  });
  return stack;
}
