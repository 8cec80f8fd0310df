import { fileURLToPath } from 'node:url';
import { ApplicationFailure } from '@temporalio/activity';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionCommitOutcome, StagedItem } from '../../activities/session-commit.js';
import type { StageOutcome, UploadOutcome, UploadRequest } from '../../activities/types.js';
import { FailureType } from '../../workflows/failures.js';
import type { BatchWorkflowInput, BatchWorkflowResult, runOneBatch } from '../support/batch-workflow.js';
import { connectTemporal, type TestTemporal } from '../support/stack.js';

/**
 * workflows/batch.ts on a real Temporal server with stubbed activities: how a batch's outcome is
 * added up from what each activity answered, in both commit modes.
 */
type Behaviour = 'archive' | 'throttled-once' | 'lease-lost' | 'reject' | 'revoke' | 'slow';
/** How long a 'slow' item takes: a source that answers late, well past the 2 s straggler time. */
const SLOW_MS = 5_000;
const behaviour = new Map<string, Behaviour>();
const started: string[] = [];
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
