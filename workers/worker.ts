import { fileURLToPath } from 'node:url';
import type { DataConverter } from '@temporalio/common';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities/index.js';
import type { ActivityDeps } from '../activities/types.js';
import {
  checkNamespace,
  temporalConnectionOptions,
  temporalFailure,
  withConnectTimeout,
  type TemporalTarget,
} from '../temporal/connection.js';
import { TASK_QUEUE } from '../workflows/names.js';
import { DEFAULT_MAX_CACHED_WORKFLOWS } from './config.js';
import { workerDeploymentOptions, type WorkerVersion } from './versioning.js';

/** The workflow code's entry file; Temporal bundles it (and what it imports) into the sandbox. */
export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export interface ArchiverWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  activities: ActivityDeps;
  /**
   * How payloads are sealed (archiverDataConverter); a `workflowBundle` must have been built with
   * the same failure converter (workers/bundle.ts does).
   */
  dataConverter: DataConverter;
  /** @default TASK_QUEUE; tests use their own queue to share one server. */
  taskQueue?: string;
  /** A pre-built bundle saves the ~seconds of bundling per worker. @default bundle WORKFLOWS_PATH */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /** In-flight uploads get this long to finish on shutdown instead of being cancelled. @default 30 s */
  shutdownGraceMs?: number;
  maxConcurrentActivityTaskExecutions?: number;
  /** Workflows kept in memory between tasks; the rest are replayed on their next task. @default DEFAULT_MAX_CACHED_WORKFLOWS */
  maxCachedWorkflows?: number;
  /** The Worker Deployment version to declare; unset, the worker is unversioned and takes any task. */
  workerVersion?: WorkerVersion | undefined;
}

/** How long a cached workflow's task waits for its worker before any worker may take it. */
const STICKY_QUEUE_TIMEOUT = '2s';

/** A worker hosting the customer workflows and all activities. */
export async function createArchiverWorker(options: ArchiverWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue ?? TASK_QUEUE,
    ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowsPath: WORKFLOWS_PATH }),
    activities: createActivities(options.activities),
    dataConverter: options.dataConverter,
    shutdownGraceTime: options.shutdownGraceMs ?? 30_000,
    maxConcurrentActivityTaskExecutions: options.maxConcurrentActivityTaskExecutions ?? 100,
    maxCachedWorkflows: options.maxCachedWorkflows ?? DEFAULT_MAX_CACHED_WORKFLOWS,
    // Upload-session progress rides on heartbeats; send them often enough that a retry after a
    // crash resumes close to where Dropbox is.
    maxHeartbeatThrottleInterval: '2s',
    // A customer's workflow tasks go to the worker that cached it. When that worker dies, the
    // server hands them to any worker only after this long (the SDK's default is 10 s, during
    // which the customer uploads nothing).
    stickyQueueScheduleToStartTimeout: STICKY_QUEUE_TIMEOUT,
    ...(options.workerVersion ? { workerDeploymentOptions: workerDeploymentOptions(options.workerVersion) } : {}),
  });
}

/**
 * Connects to Temporal as configured, within its connect timeout (the native connection's own
 * gives up only after about 30 s), and checks that the namespace exists.
 * @throws TemporalUnreachable or TemporalRejected
 */
export async function connectWorker(target: TemporalTarget): Promise<NativeConnection> {
  let connection: NativeConnection;
  try {
    connection = await withConnectTimeout(
      NativeConnection.connect(temporalConnectionOptions(target)),
      target,
      (late) => {
        void late.close();
      },
    );
  } catch (err) {
    throw temporalFailure(err, target) ?? err;
  }
  try {
    await checkNamespace(connection.workflowService, target);
  } catch (err) {
    await connection.close();
    throw err;
  }
  return connection;
}
