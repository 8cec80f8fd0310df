/** Samples a run about once a second: archived items, upload requests and 429s, the controller's status. */
import type { Db } from '../db/pool.js';
import type { DropboxEmulator } from 'dropbox-emulator';
import { archivedCount } from './data.js';
import type { ControllerStatus } from './designs/types.js';

export interface Sample {
  /** Seconds since the run started. */
  t: number;
  archived: number;
  /** Upload requests (files/upload and upload sessions) so far, and how many were answered 429. */
  uploadRequests: number;
  upload429: number;
  /** The emulated per-token limit in force, uploads/s; null = none. */
  limit: number | null;
  batchSize?: number;
  concurrency?: number;
  /** Items/s of the customer's last batch, as its status reports it. */
  ratePerSecond?: number;
  /** The controller's paced rate and limit estimate (archiver only), uploads/s. */
  pacedRatePerSecond?: number;
  limitEstimatePerSecond?: number;
}

/** The archiver's status carries the controller's figures; baselines report none. */
type SampledStatus = ControllerStatus & {
  pacedRatePerSecond?: number | undefined;
  limitEstimatePerSecond?: number | undefined;
};

/** Upload requests and 429s the emulator counted for these accounts. */
export function uploadCounts(emulator: DropboxEmulator, accountIds: string[]): { requests: number; rejected: number } {
  const accounts = emulator.stats().accounts;
  let requests = 0;
  let rejected = 0;
  for (const id of accountIds) {
    for (const [key, n] of Object.entries(accounts[id]?.requests ?? {})) {
      if (!key.startsWith('/2/files/upload')) continue;
      requests += n;
      if (key.endsWith(' 429')) rejected += n;
    }
  }
  return { requests, rejected };
}

export interface SamplerOptions {
  db: Db;
  emulator: DropboxEmulator;
  startedAt: number;
  customers: () => string[];
  limit: () => number | null;
  /** The customer whose controller is plotted. */
  status?: () => Promise<ControllerStatus | undefined>;
  intervalMs?: number;
}

export function startSampler(o: SamplerOptions): { samples: Sample[]; stop(): Promise<void> } {
  const samples: Sample[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const due = Date.now() + (o.intervalMs ?? 1_000);
      const ids = o.customers();
      const [archived, controller] = await Promise.all([archivedCount(o.db, ids), o.status?.()]);
      const status: SampledStatus | undefined = controller;
      const { requests, rejected } = uploadCounts(o.emulator, ids);
      samples.push({
        t: (Date.now() - o.startedAt) / 1000,
        archived,
        uploadRequests: requests,
        upload429: rejected,
        limit: o.limit(),
        ...(status
          ? { batchSize: status.batchSize, concurrency: status.concurrency, ratePerSecond: status.ratePerSecond }
          : {}),
        ...(status?.pacedRatePerSecond !== undefined ? { pacedRatePerSecond: status.pacedRatePerSecond } : {}),
        ...(status?.limitEstimatePerSecond !== undefined
          ? { limitEstimatePerSecond: status.limitEstimatePerSecond }
          : {}),
      });
      await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
    }
  })();
  return {
    samples,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}
