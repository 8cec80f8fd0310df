import type { Db } from '../../db/pool.js';
import type { CommitMode } from '../../workflows/batch.js';
import type { BenchStack, BenchTemporal } from '../stack.js';

export type DesignName = 'archiver' | 'cron' | 'fixed';

export interface DesignContext {
  stack: BenchStack;
  db: Db;
  /** Unique per run: names the task queue. */
  tag: string;
  commitMode?: CommitMode;
  /** The worker's activity slots; the baselines get as many threads. @default WORKER_SLOTS */
  slots?: number;
  /** The Temporal server the archiver runs on. @default stack.temporal (fairness on) */
  temporal?: BenchTemporal;
  /** The archiver's live window (ARCHIVER_LIVE_WINDOW); 0 leases oldest first. @default 24 h */
  liveWindowMs?: number;
}

/** What the controller reports (the archiver's status query); baselines have none. */
export interface ControllerStatus {
  batchSize: number;
  concurrency: number;
  ratePerSecond: number;
}

export interface RunningDesign {
  /** Starts archiving these customers (their rows and items exist). */
  add(customerIds: string[]): Promise<void>;
  status(customerId: string): Promise<ControllerStatus | undefined>;
  stop(): Promise<void>;
}

/** The worker's activity slots (maxConcurrentActivityTaskExecutions); baselines share as many. */
export const WORKER_SLOTS = 100;
