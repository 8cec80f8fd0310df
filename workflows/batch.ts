import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  patched,
  proxyActivities,
  sleep,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { ItemEnd, SliceItem, SliceItemResult, SliceOutcome, Throttles } from '../activities/types.js';
import type { StagedItem } from '../activities/session-commit.js';
import { MAX_BATCH_ENTRIES } from './dropbox-limits.js';
import { FailureType, ITEM_FAILURES, NON_RETRYABLE_FAILURES } from './failures.js';
import type { UploadPacer, UploadSlot } from './pacing/workflow-pacer.js';

const uploadRetry = {
  initialInterval: '1s',
  backoffCoefficient: 2,
  maximumInterval: '1 minute',
  // After this many attempts the item goes back to pending for a later batch, so one stuck item
  // cannot hold its batch forever.
  maximumAttempts: 25,
  nonRetryableErrorTypes: NON_RETRYABLE_FAILURES,
};

const uploadOptions: ActivityOptions = {
  startToCloseTimeout: '30 minutes',
  // A killed worker's uploads are retried elsewhere this soon; activities heartbeat every 2 s.
  heartbeatTimeout: '8s',
  retry: uploadRetry,
};
const { uploadItem, stageItem, uploadItems, stageItems } = proxyActivities<Activities>(uploadOptions);

const commitOptions: ActivityOptions = { startToCloseTimeout: '5 minutes', retry: uploadRetry };
const { commitSessions } = proxyActivities<Activities>(commitOptions);

/** How items reach Dropbox: one files/upload each, or staged sessions committed with finish_batch_v2. */
export type CommitMode = 'single' | 'sessions';

/** How many times a batch commit is repeated for entries Dropbox could not take yet. */
const MAX_COMMIT_ROUNDS = 10;

export interface BatchRun {
  customerId: string;
  leaseToken: string;
  itemIds: string[];
  mode: CommitMode;
  /** True once the customer is paused: start nothing new. */
  stopped: () => boolean;
  /** Gives each upload its start time and learns from its outcome. */
  pacer: UploadPacer;
  /** Called as items finish, with how many of the batch are done and what they added up to so far. */
  onProgress: (done: number, sofar: Readonly<BatchResult>) => void;
  /**
   * Single mode, from the `detach-stragglers` patch on: uploads that run far longer than usual (a
   * source that does not answer, a Dropbox request that hangs until its deadline) stop counting
   * against W, and the batch returns once only they are left, so they cannot hold back the
   * customer's other items. Undefined: every upload counts and the batch waits for all.
   */
  stragglers?: Stragglers | undefined;
  /**
   * From the `upload-slices` patch on: each upload activity carries a slice of the batch's items
   * (see inSlices) instead of one item, which costs Temporal a fraction of the history events.
   */
  slices?: boolean | undefined;
  /**
   * From the `replan-past-other-slices` patch on: items a 429 handed back are planned after the
   * start times the customer's other slice in flight still holds, not from now beside them.
   */
  replanPastOtherSlices?: boolean | undefined;
  /**
   * From the `quiet-probes` patch on: after a slice reports a 429 (its own, or another slice's:
   * the activity stops items planned before one), the batch waits for the customer's other slices
   * in flight before planning more. They belong to the same 429: each is stopping, or re-sending
   * what it had in flight, and new slices beside them would add their pace to the re-sends, at
   * the edge of a token bucket that the Retry-After refilled by only a second's worth. One of
   * them may also have met the 429 that teaches the pacer its pace.
   */
  awaitTheCut?: boolean | undefined;
}

/** A slice holds the uploads the pacer starts in about this long… */
const SLICE_SECONDS = 1;
/** …and at most this many items. */
export const MAX_SLICE_ITEMS = 50;
/**
 * Slices of a customer in flight at once, stragglers aside: the next is planned while the last
 * one's uploads run, so the pace does not stall between them.
 */
const MAX_SLICES_IN_FLIGHT = 2;
/** Dropbox's Retry-After is whole seconds, so a 429 holds a slice back at least this long. */
const MIN_RETRY_AFTER_MS = 1_000;
/** At most this many straggling slices are exempt from MAX_SLICES_IN_FLIGHT. */
const MAX_EXEMPT_SLICES = 4;

/**
 * Before the `pace-past-bad-sources` patch, no upload was a straggler before 2 s. Uploads usually
 * take tens of ms, so W is often 2 or 3, and an item whose source hangs held a slot for all of
 * that; now half a second (a false straggler only lets one more upload run at once).
 */
export const STRAGGLER_FLOOR_MS = 500;
export const STRAGGLER_FLOOR_BEFORE_PATCH_MS = 2_000;

/** At most this many of a customer's stragglers are exempt from W; beyond it they count again. */
const MAX_EXEMPT_STRAGGLERS = 8;

/**
 * Uploads that batches which already returned left running (stragglers), and where their
 * outcomes go. The workflow keeps one for the customer and waits for it to empty before it
 * continues as new or stops.
 */
export class Stragglers {
  /** Keyed by the first item id of each upload (one item, or a slice). */
  private readonly running = new Map<string, { leaseToken: string; itemIds: string[]; upload: Promise<void> }>();
  private readonly releasing = new Set<Promise<unknown>>();

  constructor(
    private readonly typicalUploadMs: () => number,
    /** Folds a straggler's outcome into the customer; may return the release of its items' leases. */
    private readonly onLate: (itemIds: string[], leaseToken: string, outcome: BatchResult) => Promise<unknown> | void,
    /** The least time in flight that makes a straggler, in ms. */
    private readonly floorMs = STRAGGLER_FLOOR_MS,
  ) {}

  /** How many uploads (items or slices) are still running. */
  count(): number {
    return this.running.size;
  }

  /** An upload in flight this long (ms) is a straggler: 4 times a usual upload, and at least the floor. */
  afterMs(): number {
    return Math.max(this.floorMs, 4 * this.typicalUploadMs());
  }

  /** The stragglers' items of one lease, which releasing that lease must leave alone. */
  itemsOf(leaseToken: string): string[] {
    return [...this.running.values()].filter((r) => r.leaseToken === leaseToken).flatMap((r) => r.itemIds);
  }

  adopt(itemIds: string[], leaseToken: string, upload: Promise<void>): void {
    const key = itemIds[0] as string;
    this.running.set(key, { leaseToken, itemIds, upload });
    void upload.finally(() => this.running.delete(key));
  }

  late(itemIds: string[], outcome: BatchResult): void {
    const leaseToken = this.running.get(itemIds[0] as string)?.leaseToken;
    if (leaseToken === undefined) return;
    const release = this.onLate(itemIds, leaseToken, outcome);
    if (release) {
      this.releasing.add(release);
      void release.finally(() => this.releasing.delete(release));
    }
  }

  private wake: { at: number; fired: Promise<void> } | undefined;

  /**
   * A timer that fires at `at` or earlier. One timer serves every wait until it fires, so a
   * customer whose W is full costs a timer every few seconds, not one per wait.
   */
  wakeAt(at: number): Promise<void> {
    if (this.wake && this.wake.at <= at) return this.wake.fired;
    const wake = {
      at,
      fired: sleep(Math.max(1, at - Date.now())).then(() => {
        if (this.wake === wake) this.wake = undefined;
      }),
    };
    this.wake = wake;
    return wake.fired;
  }

  /** Resolves once every straggler has ended and its lease is settled. */
  async settled(): Promise<void> {
    await condition(() => this.running.size === 0 && this.releasing.size === 0);
  }
}

/** An empty result, to count into. */
export function emptyResult(): BatchResult {
  return {
    archived: 0,
    failed: 0,
    deferred: 0,
    rateLimited: 0,
    writeContention: 0,
    unfinished: 0,
    lastError: undefined,
    pauseAs: undefined,
  };
}

/** What one batch's uploads added up to. */
export interface BatchOutcome {
  archived: number;
  failed: number;
  /** Items that kept failing transiently and now wait on their rows for a retry time. */
  deferred: number;
  /** Upload requests answered 429 `too_many_requests` (or plain-text 429). */
  rateLimited: number;
  /** Upload requests answered `too_many_write_operations`. */
  writeContention: number;
}

/** A batch's outcome, and what the customer must do next. */
export interface BatchResult extends BatchOutcome {
  /** Items neither archived nor failed; their leases must be released. */
  unfinished: number;
  lastError: string | undefined;
  /** Set when the customer must pause: its token is revoked, its Dropbox is full or its Data Transport quota used up. */
  pauseAs: { state: PauseState; reason: string } | undefined;
}

/** The states a failed upload pauses its customer in. */
export type PauseState = 'needs-reauth' | 'storage-full' | 'quota-exceeded';

/**
 * Patch: a used-up Data Transport quota (QuotaExceeded) pauses the customer as quota-exceeded,
 * until the quota resets. Before it, a slice's QuotaExceeded pause read as storage-full and a
 * thrown one paused nothing. Asked only when such a failure arrives, so running customers take
 * the new path at their first one.
 */
export const QUOTA_EXCEEDED_PAUSE = 'quota-exceeded-pause';

/** The state a pausing failure puts the customer in. */
function pauseStateFor(type: string | undefined): PauseState | undefined {
  switch (type) {
    case FailureType.AuthRevoked:
      return 'needs-reauth';
    case FailureType.StorageFull:
      return 'storage-full';
    case FailureType.QuotaExceeded:
      return patched(QUOTA_EXCEEDED_PAUSE) ? 'quota-exceeded' : undefined;
    default:
      return undefined;
  }
}

/** Runs one leased batch in the chosen mode. */
export async function runBatch(run: BatchRun): Promise<BatchResult> {
  const result = emptyResult();
  const stopped = () => run.stopped() || result.pauseAs !== undefined;
  const parallel = (
    itemIds: string[],
    work: (itemId: string, startAt: number) => Promise<ItemThrottles>,
    stragglers?: { pool: Stragglers; leaseToken: string },
  ) => inParallel(itemIds, run.pacer, stopped, result, (done) => run.onProgress(done, result), work, stragglers);
  // Temporal's task queue hands out tasks fairly across customers when the worker is saturated
  // (with fairness enabled on the server), so a huge backlog cannot starve the others.
  const fair = { priority: { fairnessKey: run.customerId } };
  const request = (itemId: string, startAt: number) => ({
    customerId: run.customerId,
    itemId,
    leaseToken: run.leaseToken,
    startAt,
  });
  if (run.slices) return runSlicedBatch(run, result, stopped);
  if (run.mode === 'single') {
    await parallel(
      run.itemIds,
      async (itemId, startAt) => {
        const done = await uploadItem.executeWithOptions(
          { ...uploadOptions, ...fair, summary: `upload item ${itemId}` },
          [request(itemId, startAt)],
        );
        const record = (into: BatchResult) => {
          into.rateLimited += done.rateLimited;
          countEnd(itemId, done, into);
        };
        return { ...done, accepted: done.status === 'archived', record };
      },
      run.stragglers && { pool: run.stragglers, leaseToken: run.leaseToken },
    );
    return result;
  }

  let toStage = run.itemIds;
  for (let round = 0; round < MAX_COMMIT_ROUNDS && toStage.length > 0 && !stopped(); round++) {
    const staged: StagedItem[] = [];
    await parallel(toStage, async (itemId, startAt) => {
      const done = await stageItem.executeWithOptions(
        { ...uploadOptions, ...fair, summary: `stage item ${itemId} for a batch commit` },
        [request(itemId, startAt)],
      );
      if (done.status === 'staged') staged.push(done.staged);
      const record = (into: BatchResult) => {
        into.rateLimited += done.rateLimited;
        if (done.status !== 'staged') countEnd(itemId, done, into);
      };
      return { ...done, accepted: done.status === 'staged', record };
    });
    toStage = await commitAll(run, staged, result, stopped);
  }
  result.unfinished += toStage.length;
  return result;
}

/** One slice's activity call: the items with their start times, W, and when an upload turns straggler. */
type SliceWork = (
  items: SliceItem[],
  concurrency: number,
  stragglerAfterMs: number | undefined,
) => Promise<SliceOutcome>;

/** runBatch from the `upload-slices` patch on: each upload activity carries a slice of items. */
async function runSlicedBatch(run: BatchRun, result: BatchResult, stopped: () => boolean): Promise<BatchResult> {
  const sliceRequest = (items: SliceItem[], concurrency: number, stragglerAfterMs: number | undefined) => ({
    customerId: run.customerId,
    leaseToken: run.leaseToken,
    items,
    concurrency,
    stragglerAfterMs,
  });
  const options = (what: string, items: SliceItem[]): ActivityOptions => ({
    ...uploadOptions,
    priority: { fairnessKey: run.customerId },
    summary: `${what} ${items.length} items (${items[0]?.itemId} to ${items[items.length - 1]?.itemId})`,
  });
  const pacer = run.replanPastOtherSlices ? run.pacer : replanningFromNow(run.pacer);
  const slices = (
    itemIds: string[],
    work: SliceWork,
    record: (item: SliceItemResult, into: BatchResult) => void,
    stragglers?: { pool: Stragglers; leaseToken: string },
  ) =>
    inSlices(
      itemIds,
      { pacer, stopped, awaitTheCut: run.awaitTheCut === true },
      result,
      (done) => run.onProgress(done, result),
      work,
      record,
      stragglers,
    );

  if (run.mode === 'single') {
    await slices(
      run.itemIds,
      (items, concurrency, after) =>
        uploadItems.executeWithOptions(options('upload', items), [sliceRequest(items, concurrency, after)]),
      (item, into) => countEnd(item.itemId, item, into),
      run.stragglers && { pool: run.stragglers, leaseToken: run.leaseToken },
    );
    return result;
  }
  let toStage = run.itemIds;
  for (let round = 0; round < MAX_COMMIT_ROUNDS && toStage.length > 0 && !stopped(); round++) {
    const staged: StagedItem[] = [];
    await slices(
      toStage,
      (items, concurrency, after) =>
        stageItems.executeWithOptions(options('stage', items), [sliceRequest(items, concurrency, after)]),
      (item, into) => {
        if (item.status === 'staged' && item.staged) staged.push(item.staged);
        else countEnd(item.itemId, item, into);
      },
    );
    toStage = await commitAll(run, staged, result, stopped);
  }
  result.unfinished += toStage.length;
  return result;
}

/**
 * Commits staged items with finish_batch_v2, one commit at a time for the customer (Dropbox
 * serialises an account's writes anyway), at most MAX_BATCH_ENTRIES each, committing again what
 * Dropbox could not take yet. Returns the items whose sessions are gone, to be staged again.
 */
async function commitAll(
  run: BatchRun,
  staged: StagedItem[],
  result: BatchResult,
  stopped: () => boolean,
): Promise<string[]> {
  const restage: string[] = [];
  let toCommit = staged.sort((a, b) => Number(BigInt(a.itemId) - BigInt(b.itemId)));
  for (let attempt = 0; toCommit.length > 0 && attempt < MAX_COMMIT_ROUNDS && !stopped(); attempt++) {
    const entries = toCommit.slice(0, MAX_BATCH_ENTRIES);
    const rest = toCommit.slice(MAX_BATCH_ENTRIES);
    try {
      const committed = await commitSessions.executeWithOptions(
        {
          ...commitOptions,
          priority: { fairnessKey: run.customerId },
          summary: `commit ${entries.length} items with finish_batch_v2`,
        },
        [run.customerId, run.leaseToken, entries],
      );
      result.archived += committed.archived.length;
      result.failed += committed.rejected.length;
      restage.push(...committed.restage);
      if (committed.storageFull) {
        result.pauseAs = {
          state: 'storage-full',
          reason: 'Dropbox answered insufficient_space when committing a batch',
        };
        result.lastError = result.pauseAs.reason;
      }
      toCommit = [...committed.retry, ...rest];
      if (committed.retry.length > 0) {
        result.writeContention += committed.retry.length;
        await sleep(committed.retryAfterMs);
      }
    } catch (err) {
      recordFailure(`batch of ${entries.length}`, err, result);
      result.unfinished += entries.length;
      toCommit = rest;
    }
  }
  result.unfinished += toCommit.length;
  return restage;
}

/**
 * Runs `itemIds` in slices, at most MAX_SLICES_IN_FLIGHT at once (stragglers aside), stopping new
 * slices once `stopped()`. A slice holds the items the pacer starts in the next SLICE_SECONDS, up
 * to MAX_SLICE_ITEMS, each with its start time; when the slice ends the pacer learns from each
 * item's outcome as it would from one upload each. With `stragglers`, a slice still running
 * `stragglers.afterMs()` after its last start time is a straggler: it does not count against
 * MAX_SLICES_IN_FLIGHT, and once only stragglers are left they are handed over and this returns.
 */
async function inSlices(
  itemIds: string[],
  { pacer, stopped, awaitTheCut }: { pacer: UploadPacer; stopped: () => boolean; awaitTheCut: boolean },
  result: BatchResult,
  progress: (done: number) => void,
  work: SliceWork,
  record: (item: SliceItemResult, into: BatchResult) => void,
  stragglers?: { pool: Stragglers; leaseToken: string },
): Promise<void> {
  const pool = stragglers?.pool;
  const queue = [...itemIds];
  const inFlight = new Map<Promise<void>, { itemIds: string[]; lastStartAt: number }>();
  let handedOver = false;
  let done = 0;
  // A slice waiting out a Retry-After is not a straggler: the pace it met is the one to learn from.
  const graceMs = awaitTheCut ? MIN_RETRY_AFTER_MS : 0;
  const isStraggler = (lastStartAt: number) =>
    pool !== undefined && Date.now() - lastStartAt > pool.afterMs() + graceMs;
  /**
   * Slices whose report must come before the next slice is planned (see BatchRun.awaitTheCut),
   * until they turn stragglers: one on a worker that died reports only after its heartbeat timeout.
   */
  let awaited: Promise<void>[] = [];
  const awaiting = () =>
    awaited.some((slice) => {
      const running = inFlight.get(slice);
      return running !== undefined && !isStraggler(running.lastStartAt);
    });
  const counted = () => {
    if (!pool) return inFlight.size;
    let young = 0;
    for (const { lastStartAt } of inFlight.values()) if (!isStraggler(lastStartAt)) young += 1;
    return young + Math.max(0, inFlight.size - young + pool.count() - MAX_EXEMPT_SLICES);
  };
  const nextChange = () => {
    const pending = [...inFlight.keys()];
    if (!pool) return Promise.race(pending);
    let turnsAt = Infinity;
    for (const { lastStartAt } of inFlight.values())
      if (!isStraggler(lastStartAt)) turnsAt = Math.min(turnsAt, lastStartAt);
    if (!Number.isFinite(turnsAt)) return Promise.race(pending);
    return Promise.race([...pending, pool.wakeAt(turnsAt + pool.afterMs() + graceMs + 1)]);
  };
  for (;;) {
    while (counted() < MAX_SLICES_IN_FLIGHT && queue.length > 0 && !stopped() && !awaiting()) {
      const { ratePerSecond, concurrency } = pacer.plan();
      const size = Math.min(MAX_SLICE_ITEMS, Math.max(1, Math.ceil(ratePerSecond * SLICE_SECONDS)));
      const ids = queue.splice(0, size);
      const slots = ids.map(() => pacer.slot());
      const items = ids.map((itemId, i) => ({ itemId, startAt: (slots[i] as UploadSlot).startAt }));
      let into = result;
      let returned: string[] = [];
      const target = () => (into = handedOver ? emptyResult() : result);
      const running: Promise<void> = work(items, concurrency, pool?.afterMs())
        .then((outcome) => {
          target();
          const ended = new Map(outcome.items.map((item) => [item.itemId, item]));
          ids.forEach((itemId, i) => {
            const item = ended.get(itemId);
            if (!item) return;
            into.rateLimited += item.rateLimited;
            into.writeContention += item.writeContention;
            record(item, into);
            pacer.done(slots[i] as UploadSlot, {
              accepted: item.status === 'archived' || item.status === 'staged',
              rateLimited: item.rateLimited,
              writeContention: item.writeContention,
              clean: item.attempts === 1,
              durationMs: item.durationMs,
              endedAt: item.endedAt,
              rateLimitedAt: item.rateLimited > 0 ? outcome.rateLimitedAt : undefined,
            });
          });
          into.unfinished += outcome.unfinished.length;
          // A 429 kept these from starting: plan them again, at the pace it taught the pacer.
          returned = outcome.unstarted ?? [];
          if (awaitTheCut && outcome.rateLimitedAt !== undefined)
            awaited = [...inFlight.keys()].filter((other) => other !== running);
          if (into !== result) into.unfinished += returned.length;
          else if (returned.length > 0) {
            queue.unshift(...returned);
            // Not before the start times the other slice in flight still holds: two slices
            // handing items back after the same 429 would otherwise both restart from now.
            let inUseUntil: number | undefined;
            for (const [other, slice] of inFlight)
              if (other !== running) inUseUntil = Math.max(inUseUntil ?? -Infinity, slice.lastStartAt);
            pacer.replan(inUseUntil);
          }
          if (outcome.pause) {
            // Before the quota-exceeded-pause patch every pause but AuthRevoked was storage-full.
            const state = pauseStateFor(outcome.pause.type) ?? 'storage-full';
            into.lastError = outcome.pause.message;
            into.pauseAs = { state, reason: outcome.pause.message };
          }
        })
        .catch((err: unknown) => {
          target();
          const type = recordFailure(`slice of ${ids.length} items`, err, into);
          into.unfinished += ITEM_FAILURES.includes(type as FailureType) ? ids.length - 1 : ids.length;
          for (const slot of slots) pacer.done(slot, failedUpload(type));
        })
        .finally(() => {
          inFlight.delete(running);
          if (into !== result) pool?.late(ids, into);
          else progress((done += ids.length - returned.length));
        });
      inFlight.set(running, { itemIds: ids, lastStartAt: items[items.length - 1]?.startAt ?? Date.now() });
    }
    if (inFlight.size === 0) break;
    // Nothing more to start: return once only stragglers are left. (A slice may still hand items back.)
    const nothingToStart = queue.length === 0 || stopped();
    if (nothingToStart && pool && [...inFlight.values()].every((s) => isStraggler(s.lastStartAt))) break;
    await nextChange();
  }
  if (stragglers && inFlight.size > 0) {
    handedOver = true;
    for (const [upload, slice] of inFlight) stragglers.pool.adopt(slice.itemIds, stragglers.leaseToken, upload);
  }
  result.unfinished += queue.length;
}

/** What one item's uploads met, for the pacer, and how to count its outcome into a result. */
type ItemThrottles = Throttles & { accepted: boolean; record: (into: BatchResult) => void };

/**
 * Runs `work` over `itemIds` with at most W in flight, stopping new starts once `stopped()`. Each
 * upload gets its start time from the pacer and reports its outcome back to it. With
 * `stragglers`, uploads in flight for longer than `stragglers.afterMs()` do not count against W
 * (up to MAX_EXEMPT_STRAGGLERS), and once every item has started and only stragglers are left,
 * they are handed to `stragglers` and this returns.
 */
async function inParallel(
  itemIds: string[],
  pacer: UploadPacer,
  stopped: () => boolean,
  result: BatchResult,
  progress: (done: number) => void,
  work: (itemId: string, startAt: number) => Promise<ItemThrottles>,
  stragglers?: { pool: Stragglers; leaseToken: string },
): Promise<void> {
  const pool = stragglers?.pool;
  const queue = [...itemIds];
  const inFlight = new Map<Promise<void>, { itemId: string; startAt: number }>();
  let handedOver = false;
  let done = 0;
  const isStraggler = (startAt: number) => pool !== undefined && Date.now() - startAt > pool.afterMs();
  const countedAgainstW = () => {
    if (!pool) return inFlight.size;
    let young = 0;
    for (const { startAt } of inFlight.values()) if (!isStraggler(startAt)) young += 1;
    const exempt = inFlight.size - young + pool.count();
    return young + Math.max(0, exempt - MAX_EXEMPT_STRAGGLERS);
  };
  // Wakes on the next upload to end, or when the next upload in flight turns into a straggler:
  // nothing else would wake the workflow when the uploads that fill W are all stuck.
  const nextChange = () => {
    const pending = [...inFlight.keys()];
    if (!pool) return Promise.race(pending);
    let turnsAt = Infinity;
    for (const { startAt } of inFlight.values()) if (!isStraggler(startAt)) turnsAt = Math.min(turnsAt, startAt);
    if (!Number.isFinite(turnsAt)) return Promise.race(pending);
    return Promise.race([...pending, pool.wakeAt(turnsAt + pool.afterMs() + 1)]);
  };
  while (queue.length > 0 && !stopped()) {
    while (countedAgainstW() < pacer.width() && queue.length > 0 && !stopped()) {
      const itemId = queue.shift() as string;
      const slot = pacer.slot();
      // Counts into the batch's result, or, for a straggler that ends after the batch returned, into its own.
      let into = result;
      const target = () => (into = handedOver ? emptyResult() : result);
      const running: Promise<void> = work(itemId, slot.startAt)
        .then((t) => {
          t.record(target());
          pacer.done(slot, {
            accepted: t.accepted,
            rateLimited: t.rateLimited,
            writeContention: t.writeContention,
            clean: t.attempts === 1,
          });
        })
        .catch((err: unknown) => {
          const type = recordFailure(`item ${itemId}`, err, target());
          if (!ITEM_FAILURES.includes(type as FailureType)) into.unfinished += 1;
          pacer.done(slot, failedUpload(type));
        })
        .finally(() => {
          inFlight.delete(running);
          if (into !== result) pool?.late([itemId], into);
          else progress((done += 1));
        });
      inFlight.set(running, { itemId, startAt: slot.startAt });
    }
    if (inFlight.size > 0) await nextChange();
  }
  while (inFlight.size > 0) {
    if (pool && [...inFlight.values()].every((e) => isStraggler(e.startAt))) break;
    await nextChange();
  }
  if (stragglers && inFlight.size > 0) {
    handedOver = true;
    for (const [upload, { itemId }] of inFlight) stragglers.pool.adopt([itemId], stragglers.leaseToken, upload);
  }
  result.unfinished += queue.length;
}

/** `pacer` as runs from before the `replan-past-other-slices` patch use it: a replan starts from now. */
function replanningFromNow(pacer: UploadPacer): UploadPacer {
  return {
    plan: () => pacer.plan(),
    width: () => pacer.width(),
    slot: () => pacer.slot(),
    replan: () => pacer.replan(),
    done: (slot, outcome) => pacer.done(slot, outcome),
    typicalUploadMs: () => pacer.typicalUploadMs(),
  };
}

/** What the pacer learns from an upload whose activity failed with a failure of `type`. */
function failedUpload(type: string | undefined) {
  return {
    accepted: false,
    clean: false,
    rateLimited: type === FailureType.RateLimited ? 1 : 0,
    writeContention: type === FailureType.WriteContention ? 1 : 0,
  };
}

/** Folds how an item's upload ended into the batch result. */
function countEnd(
  itemId: string,
  done: { status: ItemEnd | 'staged'; error?: string | undefined },
  result: BatchResult,
): void {
  switch (done.status) {
    case 'archived':
    case 'already-archived':
      result.archived += 1;
      break;
    case 'lease-lost':
      result.unfinished += 1;
      break;
    case 'deferred':
      result.deferred += 1;
      result.lastError = `item ${itemId}: ${done.error ?? 'failed; waiting to retry'}`;
      break;
    case 'failed':
      result.failed += 1;
      result.lastError = `item ${itemId}: ${done.error ?? 'failed'}`;
      break;
  }
}

/** Folds an activity's final failure into the batch result; returns its taxonomy type. */
function recordFailure(what: string, err: unknown, result: BatchResult): string | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  const type = cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
  result.lastError = `${what}: ${cause instanceof Error ? cause.message : String(cause)}`;
  switch (type) {
    // Activities now return item failures; earlier ones threw them, as replayed histories show.
    case FailureType.ItemRejected:
    case FailureType.SourceGone:
      result.failed += 1;
      break;
    case FailureType.AuthRevoked:
    case FailureType.StorageFull:
    case FailureType.QuotaExceeded: {
      const state = pauseStateFor(type);
      if (state) result.pauseAs = { state, reason: result.lastError };
      break;
    }
    case FailureType.RateLimited:
      result.rateLimited += 1;
      break;
    case FailureType.WriteContention:
      result.writeContention += 1;
      break;
  }
  return type;
}
