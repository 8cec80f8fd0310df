// runSlice's start times, with a stub upload: how a slice spaces its uploads when it starts late
// and when it retries after a 429.
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { runSlice, type SliceProgress } from '../../activities/slice.js';
import type { SliceRequest } from '../../activities/types.js';

const SPACING_MS = 100;

/** Runs a slice of `ids` planned SPACING_MS apart from `from`, as attempt `attempt`; returns when each upload began. */
async function starts(ids: string[], from: number, attempt = 1, heartbeat?: SliceProgress): Promise<number[]> {
  const request: SliceRequest = {
    customerId: 'c',
    leaseToken: 'l',
    concurrency: 8,
    items: ids.map((itemId, i) => ({ itemId, startAt: from + i * SPACING_MS })),
  };
  const began: number[] = [];
  const env = new MockActivityEnvironment({ attempt, heartbeatDetails: heartbeat });
  await env.run(() =>
    runSlice(request, (itemId) => {
      began.push(Date.now());
      return Promise.resolve({ itemId, status: 'archived', bytes: 1, rateLimited: 0, writeContention: 0, attempts: 1 });
    }),
  );
  return began;
}

const gaps = (times: number[]) => times.slice(1).map((t, i) => t - (times[i] as number));

describe('runSlice spacing', () => {
  it('keeps the planned spacing when every start time has already passed', async () => {
    const began = await starts(['1', '2', '3', '4'], Date.now() - 2_000);
    for (const gap of gaps(began)) expect(gap).toBeGreaterThanOrEqual(SPACING_MS - 10);
  });

  it('re-sends the uploads a 429 caught in flight twice as far apart, as the other slice retries beside it', async () => {
    const heartbeat: SliceProgress = {
      done: [],
      sessions: {},
      rateLimitedAt: Date.now() - 1_000,
      started: ['1', '2', '3'],
    };
    const began = await starts(['1', '2', '3', '4'], Date.now() - 1_500, 2, heartbeat);
    // Item 4 never started: it goes back to the workflow, not re-sent here.
    expect(began).toHaveLength(3);
    for (const gap of gaps(began)) expect(gap).toBeGreaterThanOrEqual(2 * SPACING_MS - 10);
  });

  it('keeps the planned spacing on a retry after anything but a 429', async () => {
    const heartbeat: SliceProgress = { done: [], sessions: {}, started: ['1', '2', '3'] };
    const began = await starts(['1', '2', '3'], Date.now() - 1_500, 2, heartbeat);
    for (const gap of gaps(began)) {
      expect(gap).toBeGreaterThanOrEqual(SPACING_MS - 10);
      expect(gap).toBeLessThan(2 * SPACING_MS - 10);
    }
  });
});
