import { fileURLToPath } from 'node:url';
import { ApplicationFailure } from '@temporalio/activity';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionCommitOutcome, StagedItem } from '../../activities/session-commit.js';
import type {
  SliceItemResult,
  SliceOutcome,
  SliceRequest,
  StageOutcome,
  UploadOutcome,
  UploadRequest,
} from '../../activities/types.js';
import { FailureType } from '../../workflows/failures.js';
import type { BatchWorkflowInput, BatchWorkflowResult, runOneBatch } from '../support/batch-workflow.js';
import { connectTemporal, testDataConverter, type TestTemporal } from '../support/stack.js';

/**
 * workflows/batch.ts on a real Temporal server with stubbed activities: how a batch's outcome is
 * added up from what each activity answered, in both commit modes.
 */
type Behaviour = 'archive' | 'throttled-once' | 'lease-lost' | 'reject' | 'revoke' | 'slow' | 'hand-back';
/** Items a slice stub handed back unstarted once already. */
const handedBack = new Set<string>();
/** How long a 'slow' item takes: a source that answers late, well past the 2 s straggler time. */
const SLOW_MS = 5_000;
const behaviour = new Map<string, Behaviour>();
const started: string[] = [];
/** The items of each slice activity, in the order they were scheduled. */
let slices: string[][] = [];
/** The start times of each slice's items, as `slices`. */
let sliceStarts: number[][] = [];

/** A slice stub: each item as `answer` says; a revoked token pauses, leaving the rest unfinished. */
async function slice(request: SliceRequest, stage: boolean): Promise<SliceOutcome> {
  slices.push(request.items.map((i) => i.itemId));
  sliceStarts.push(request.items.map((i) => i.startAt));
  if (request.items.some((i) => behaviour.get(i.itemId) === 'slow')) await new Promise((r) => setTimeout(r, SLOW_MS));
  const items: SliceItemResult[] = [];
  for (const [n, { itemId }] of request.items.entries()) {
    const b = behaviour.get(itemId) ?? 'archive';
    if (b === 'hand-back' && !handedBack.has(itemId)) {
      // As after a 429: this and the items after it were never started.
      for (const { itemId: id } of request.items.slice(n)) handedBack.add(id);
      return { items, unfinished: [], unstarted: request.items.slice(n).map((i) => i.itemId), rateLimitedAt: 1 };
    }
    if (b === 'revoke') {
      started.push(itemId);
      const unfinished = request.items.slice(n).map((i) => i.itemId);
      return { items, unfinished, unstarted: [], pause: { type: 'AuthRevoked', message: 'invalid_access_token' } };
    }
    if (b === 'reject') {
      started.push(itemId);
      items.push({
        itemId,
        status: 'failed',
        bytes: 0,
        error: 'a name Dropbox refuses',
        durationMs: 5,
        endedAt: Date.now(),
        ...throttles,
      });
      continue;
    }
    const t = answer(itemId);
    const status = b === 'lease-lost' ? 'lease-lost' : stage ? 'staged' : 'archived';
    const staged = { itemId, sessionId: `s-${itemId}`, size: 1, contentHash: 'h' };
    items.push({
      itemId,
      status,
      bytes: 1,
      durationMs: 5,
      endedAt: Date.now(),
      ...(status === 'staged' ? { staged } : {}),
      ...t,
    });
  }
  return { items, unfinished: [], unstarted: [] };
}
let commits: string[][] = [];
let commitScript: Array<(staged: StagedItem[]) => Partial<SessionCommitOutcome>> = [];

const throttles = { rateLimited: 0, writeContention: 0, attempts: 1 };
function answer(itemId: string): Pick<UploadOutcome, 'rateLimited' | 'writeContention' | 'attempts'> {
  started.push(itemId);
  switch (behaviour.get(itemId) ?? 'archive') {
    case 'reject':
      throw ApplicationFailure.nonRetryable(`item ${itemId} has a name Dropbox refuses`, FailureType.ItemRejected);
    case 'revoke':
      throw ApplicationFailure.nonRetryable('invalid_access_token', FailureType.AuthRevoked);
    case 'throttled-once':
      return { rateLimited: 1, writeContention: 0, attempts: 2 };
    default:
      return throttles;
  }
}

// Stubs answer through a promise, as real activities do, so a thrown failure reaches Temporal as a rejection.
const activities = {
  uploadItem: ({ itemId }: UploadRequest): Promise<UploadOutcome> =>
    new Promise((resolve) => setTimeout(resolve, behaviour.get(itemId) === 'slow' ? SLOW_MS : 0)).then(() => {
      const t = answer(itemId);
      return { itemId, status: behaviour.get(itemId) === 'lease-lost' ? 'lease-lost' : 'archived', bytes: 1, ...t };
    }),
  stageItem: ({ itemId }: UploadRequest): Promise<StageOutcome> =>
    Promise.resolve().then(() => {
      const t = answer(itemId);
      return { status: 'staged', staged: { itemId, sessionId: `s-${itemId}`, size: 1, contentHash: 'h' }, ...t };
    }),
  uploadItems: (request: SliceRequest) => slice(request, false),
  stageItems: (request: SliceRequest) => slice(request, true),
  commitSessions: (_customerId: string, _leaseToken: string, staged: StagedItem[]): Promise<SessionCommitOutcome> =>
    Promise.resolve().then(() => {
      commits.push(staged.map((s) => s.itemId));
      const scripted = commitScript.shift()?.(staged) ?? {};
      const handled = new Set([
        ...(scripted.retry ?? []).map((s) => s.itemId),
        ...(scripted.restage ?? []),
        ...(scripted.rejected ?? []),
      ]);
      return {
        archived: staged.map((s) => s.itemId).filter((id) => !handled.has(id)),
        retry: [],
        restage: [],
        rejected: [],
        skipped: [],
        storageFull: false,
        retryAfterMs: 10,
        ...scripted,
      };
    }),
};

let temporal: TestTemporal;
let worker: Worker;
let running: Promise<void>;
beforeAll(async () => {
  temporal = await connectTemporal();
  worker = await Worker.create({
    connection: temporal.connection,
    namespace: temporal.namespace,
    taskQueue: temporal.taskQueue,
    activities,
    workflowsPath: fileURLToPath(new URL('../support/batch-workflow.ts', import.meta.url)),
    dataConverter: testDataConverter(),
  });
  running = worker.run();
});
afterAll(async () => {
  worker?.shutdown();
  await running;
  await temporal?.close();
});

function run(input: BatchWorkflowInput, script: Behaviour[] = []): Promise<BatchWorkflowResult> {
  behaviour.clear();
  started.length = 0;
  commits = [];
  slices = [];
  sliceStarts = [];
  handedBack.clear();
  script.forEach((b, i) => behaviour.set(input.itemIds[i] as string, b));
  return temporal.client.workflow.execute<typeof runOneBatch>('runOneBatch', {
    taskQueue: temporal.taskQueue,
    workflowId: `batch-${Date.now()}-${Math.random()}`,
    args: [input],
  });
}
const ids = (n: number) => Array.from({ length: n }, (_, i) => String(i + 1));

describe('runBatch in single mode', () => {
  it('counts archived, rejected and lease-lost items apart, and reports progress for every item', async () => {
    const result = await run({ itemIds: ids(5), mode: 'single' }, [
      'archive',
      'reject',
      'lease-lost',
      'archive',
      'archive',
    ]);
    expect(result).toMatchObject({ archived: 3, failed: 1, unfinished: 1 });
    expect(result.pauseAs).toBeUndefined();
    expect(result.lastError).toContain('item 2');
    expect(result.progress).toEqual([1, 2, 3, 4, 5]);
  });

  it('counts 429s an item met on its way and cuts the pacer once', async () => {
    const result = await run({ itemIds: ids(3), mode: 'single', caps: { maxConcurrency: 1 } }, [
      'throttled-once',
      'archive',
      'archive',
    ]);
    expect(result).toMatchObject({ archived: 3, rateLimited: 1, unfinished: 0 });
    expect(result.pacer.cuts).toBe(1);
  });

  it('pauses as needs-reauth on a revoked token and starts nothing after it', async () => {
    const result = await run({ itemIds: ids(4), mode: 'single', caps: { maxConcurrency: 1 } }, [
      'archive',
      'revoke',
      'archive',
      'archive',
    ]);
    expect(result.pauseAs?.state).toBe('needs-reauth');
    expect(started).toEqual(['1', '2']);
    // The revoked item and the two never started go back to pending.
    expect(result).toMatchObject({ archived: 1, failed: 0, unfinished: 3 });
  });
});

describe('runBatch with stragglers handed over (detach-stragglers)', () => {
  const script: Behaviour[] = ['slow', 'slow', ...Array<Behaviour>(8).fill('archive')];
  const input = (detach: boolean): BatchWorkflowInput => ({
    itemIds: ids(10),
    mode: 'single',
    caps: { maxConcurrency: 2 },
    detach,
  });

  it('without it, two slow uploads fill W and hold back the batch until they end', async () => {
    const result = await run(input(false), script);
    expect(result.returnedAfterMs).toBeGreaterThanOrEqual(SLOW_MS);
    expect(result).toMatchObject({ archived: 10, late: { archived: 0 } });
  });

  it('with it, slow uploads stop counting against W and the batch returns without them; their outcome comes late', async () => {
    const result = await run(input(true), script);
    expect(result.returnedAfterMs).toBeLessThan(SLOW_MS);
    expect(result).toMatchObject({ archived: 8, unfinished: 0, late: { archived: 2 } });
    expect(result.progress).toHaveLength(8);
  });
});

describe('runBatch in batch commit mode', () => {
  it('stages every item, then commits them in one finish_batch_v2, in item order', async () => {
    commitScript = [];
    const result = await run({ itemIds: ['3', '1', '2'], mode: 'sessions' });
    expect(result).toMatchObject({ archived: 3, failed: 0, unfinished: 0, writeContention: 0 });
    expect(commits).toEqual([['1', '2', '3']]);
  });

  it('commits again only the entries Dropbox could not take, and re-stages those whose session is gone', async () => {
    commitScript = [
      (staged) => ({ retry: staged.filter((s) => s.itemId === '2'), restage: ['3'] }),
      () => ({}),
      () => ({}),
    ];
    const result = await run({ itemIds: ids(4), mode: 'sessions' });
    expect(result).toMatchObject({ archived: 4, writeContention: 1, unfinished: 0 });
    expect(commits).toEqual([['1', '2', '3', '4'], ['2'], ['3']]);
    expect(started.filter((id) => id === '3')).toHaveLength(2);
  });

  it('pauses as storage-full when Dropbox is full, and marks rejected entries failed', async () => {
    commitScript = [() => ({ rejected: ['1'], storageFull: true })];
    const result = await run({ itemIds: ids(2), mode: 'sessions' });
    expect(result.pauseAs?.state).toBe('storage-full');
    expect(result).toMatchObject({ archived: 1, failed: 1 });
  });
});

describe('runBatch with upload slices (upload-slices)', () => {
  it('hands each upload activity the items the pacer starts in the next second, at most 50', async () => {
    const result = await run({ itemIds: ids(120), mode: 'single', slices: true });
    // The test pacer starts at 500 uploads/s: a second of it is more than a slice holds.
    expect(slices.map((s) => s.length)).toEqual([50, 50, 20]);
    expect(slices.flat()).toEqual(ids(120));
    expect(result).toMatchObject({ archived: 120, failed: 0, unfinished: 0 });
    expect(result.progress).toEqual([50, 100, 120]);
  });

  it('sizes slices by the rate: five items a slice at 5 uploads/s', async () => {
    const result = await run({ itemIds: ids(12), mode: 'single', slices: true, caps: { maxRatePerSecond: 5 } });
    expect(slices.map((s) => s.length)).toEqual([5, 5, 2]);
    expect(result.archived).toBe(12);
  });

  it("counts each item's end and the 429s it met, and learns from every item", async () => {
    const result = await run({ itemIds: ids(5), mode: 'single', slices: true }, [
      'archive',
      'reject',
      'lease-lost',
      'throttled-once',
      'archive',
    ]);
    expect(result).toMatchObject({ archived: 3, failed: 1, unfinished: 1, rateLimited: 1 });
    expect(result.lastError).toContain('item 2');
    expect(result.pacer.cuts).toBe(1);
  });

  it('plans the items a 429 kept from starting again, in a later slice, and counts each once', async () => {
    const script: Behaviour[] = ['archive', 'archive', 'hand-back'];
    const result = await run({ itemIds: ids(5), mode: 'single', slices: true, caps: { maxRatePerSecond: 5 } }, script);
    expect(slices[0]).toEqual(ids(5));
    expect(slices.slice(1).flat()).toEqual(['3', '4', '5']);
    expect(result).toMatchObject({ archived: 5, unfinished: 0 });
    expect(result.progress.at(-1)).toBe(5);
  });

  // Two slices are in flight; the first hands 3 items back after a 429 while the second still
  // holds start times ahead. Planned from now, the items a 429 handed back would start beside the
  // second slice's, at twice the rate: the burst that meets the next 429.
  for (const pastOthers of [true, false])
    it(`plans items a 429 handed back ${pastOthers ? 'after' : 'beside (before the patch)'} the start times the other slice holds`, async () => {
      const script: Behaviour[] = ['archive', 'archive', 'hand-back'];
      const input = { itemIds: ids(10), mode: 'single' as const, slices: true, caps: { maxRatePerSecond: 5 } };
      await run({ ...input, replanPastOtherSlices: pastOthers }, script);
      expect(slices.slice(0, 3)).toEqual([ids(5), ids(10).slice(5), ['3', '4', '5']]);
      const otherLast = Math.max(...(sliceStarts[1] ?? []));
      const replannedFirst = Math.min(...(sliceStarts[2] ?? []));
      if (pastOthers) expect(replannedFirst).toBeGreaterThan(otherLast);
      else expect(replannedFirst).toBeLessThan(otherLast);
    });

  it('pauses as needs-reauth when a slice meets a revoked token, and starts no further slice', async () => {
    const result = await run({ itemIds: ids(12), mode: 'single', slices: true, caps: { maxRatePerSecond: 5 } }, [
      'archive',
      'archive',
      'revoke',
    ]);
    expect(result.pauseAs?.state).toBe('needs-reauth');
    // The second slice was planned while the first ran; nothing after the pause.
    expect(slices.length).toBeLessThanOrEqual(2);
    expect(result.archived + result.unfinished).toBe(12);
    expect(result.archived).toBeGreaterThanOrEqual(2);
  });

  it('hands a slice that straggles over, so the batch returns without it; its outcome comes late', async () => {
    const script: Behaviour[] = ['slow', ...Array<Behaviour>(9).fill('archive')];
    const result = await run(
      { itemIds: ids(10), mode: 'single', slices: true, detach: true, caps: { maxRatePerSecond: 5 } },
      script,
    );
    expect(result.returnedAfterMs).toBeLessThan(SLOW_MS);
    expect(result).toMatchObject({ archived: 5, unfinished: 0, late: { archived: 5 } });
  });

  it('stages in slices and commits at most 1,000 entries per finish_batch_v2', async () => {
    commitScript = [];
    const result = await run({ itemIds: ids(1200), mode: 'sessions', slices: true });
    expect(slices.every((s) => s.length <= 50)).toBe(true);
    expect(commits.map((c) => c.length)).toEqual([1000, 200]);
    expect(result).toMatchObject({ archived: 1200, unfinished: 0 });
  });
});
