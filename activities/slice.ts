// One upload activity for several items (a slice): starts each at its paced time with bounded
// concurrency, heartbeats which items are done, and on a retry goes on from there.

import { activityInfo, heartbeat, sleep } from '@temporalio/activity';
import { FailureType } from '../workflows/failures.js';
import { TypedFailure } from './failure.js';
import type { SessionProgress } from './sessions.js';
import type { PauseFailure, SliceItem, SliceItemResult, SliceOutcome, SliceRequest } from './types.js';

/** Well inside the upload activities' 8 s heartbeat timeout, so a dead worker is noticed within it. */
const HEARTBEAT_INTERVAL_MS = 2_000;
/** Longest wait for a start time: guards against a clock far off from the workflow's. */
const MAX_START_WAIT_MS = 60_000;
/** At most this many of a slice's uploads are exempt from its concurrency as stragglers. */
const MAX_EXEMPT_STRAGGLERS = 8;
/**
 * After a 429, a retry re-sends its in-flight items this many times further apart than planned:
 * as many as a customer's slices in flight at once (MAX_SLICES_IN_FLIGHT in workflows/batch.ts).
 * And no faster than Dropbox accepted this slice's uploads before the 429: the plan may have run
 * far ahead of the limit (the first 429 of a customer comes out of slow start), and every slice
 * of the customer retries when the same Retry-After ends.
 */
const RESEND_SPACING_AFTER_429 = 2;
/** Write contention is retried inside the slice this many times for an item, then by Temporal. */
const WRITE_CONTENTION_TRIES = 10;

/** What a slice's attempts heartbeat: the items that ended, and where unfinished session uploads stand. */
export interface SliceProgress {
  done: SliceItemResult[];
  sessions: Record<string, SessionProgress>;
  /** When a 429 (or the customer's hold-back after one) stopped an attempt, epoch ms. */
  rateLimitedAt?: number | undefined;
  /** Uploads per second Dropbox accepted in that attempt until the 429; undefined if none. */
  acceptedPerSecond?: number | undefined;
  /** Items an attempt started: after a 429 the retry re-sends only these, if not done. */
  started?: string[] | undefined;
}

/** What one item's upload gets from its slice: the session progress of an earlier attempt, and where to report more. */
export interface ItemContext {
  resume: SessionProgress | undefined;
  report: (progress: SessionProgress) => void;
  /** Tries of this item in this slice so far, the current one included. */
  tries: number;
  /**
   * When the item's start time was planned, epoch ms: when the workflow scheduled the slice, or
   * when a retry after a 429 spaced its items afresh. A 429 of the customer after this time makes
   * the item go back unsent (see holdBackWhileThrottled in activities/index.ts).
   */
  plannedAt: number;
  /**
   * Dropbox took the item (before it is marked archived, which may wait for others to be marked
   * with it): what the retry after a 429 counts as the pace Dropbox accepted.
   */
  accepted: () => void;
}

/** The previous attempt's heartbeat, if it left one this code understands. */
function previousProgress(): SliceProgress {
  const details = activityInfo().heartbeatDetails as Partial<SliceProgress> | undefined;
  return {
    done: Array.isArray(details?.done) ? details.done : [],
    sessions: details?.sessions && typeof details.sessions === 'object' ? details.sessions : {},
    rateLimitedAt: typeof details?.rateLimitedAt === 'number' ? details.rateLimitedAt : undefined,
    acceptedPerSecond: typeof details?.acceptedPerSecond === 'number' ? details.acceptedPerSecond : undefined,
    started: Array.isArray(details?.started) ? details.started : undefined,
  };
}

const PAUSES: string[] = [FailureType.AuthRevoked, FailureType.StorageFull, FailureType.QuotaExceeded];

/**
 * Runs `uploadOne` over the slice's items. An item's own end (archived, failed, deferred…) is its
 * result. Transient failures and write contention are retried here, after the wait the failure
 * names; anything else an item throws stops new starts, lets the items in flight end, and then
 * either pauses the customer (a revoked token, a full Dropbox, a used-up Data Transport quota: returned as `pause`) or fails the
 * activity, for Temporal's retry policy (a 429's Retry-After becomes its nextRetryDelay). The
 * retry skips the items the heartbeat says are done, and keeps the others' spacing from now;
 * after a 429 it re-sends only the items that were in flight, and returns the ones never started
 * as `unstarted`.
 */
export async function runSlice(
  request: SliceRequest,
  uploadOne: (itemId: string, context: ItemContext) => Promise<Omit<SliceItemResult, 'durationMs' | 'endedAt'>>,
): Promise<SliceOutcome> {
  const progress = previousProgress();
  const done = new Map(progress.done.map((r) => [r.itemId, r]));
  const sessions = progress.sessions;
  const started = new Set(progress.started ?? []);
  let todo = request.items.filter((i) => !done.has(i.itemId));
  // After a 429 the pace was too fast: re-send what was in flight, and hand the items never
  // started back to the workflow, which plans them again at its new pace.
  const unstarted =
    progress.rateLimitedAt !== undefined ? todo.filter((i) => !started.has(i.itemId)).map((i) => i.itemId) : [];
  todo = todo.filter((i) => !unstarted.includes(i.itemId));
  const first = todo[0];
  const plannedAt = progress.rateLimitedAt !== undefined ? Date.now() : activityInfo().scheduledTimestampMs;
  if (activityInfo().attempt > 1 && first) {
    // Their start times have passed: keep their spacing from now. After a 429, wider: the
    // customer's other slice retries when the same Retry-After ends, and the two re-sending
    // at their old pace at once, with the new slices beside them, would be the next 429.
    const widen = progress.rateLimitedAt !== undefined ? RESEND_SPACING_AFTER_429 : 1;
    const accepted = progress.rateLimitedAt !== undefined ? progress.acceptedPerSecond : undefined;
    const minGapMs = accepted !== undefined && accepted > 0 ? 1000 / accepted : 0;
    let at = Date.now();
    let planned = first.startAt;
    todo = todo.map((i, n) => {
      if (n > 0) at += Math.max(widen * Math.max(0, i.startAt - planned), minGapMs);
      planned = i.startAt;
      return { ...i, startAt: at };
    });
  }
  let rateLimitedAt = progress.rateLimitedAt;
  let acceptedPerSecond = progress.acceptedPerSecond;
  // What Dropbox accepted in this attempt, from its first start: the pace a retry after a 429 keeps to.
  let firstStartedAt: number | undefined;
  let accepted = 0;
  const beat = () =>
    heartbeat({
      done: [...done.values()],
      sessions,
      rateLimitedAt,
      acceptedPerSecond,
      started: [...started],
    } satisfies SliceProgress);
  const ticker = setInterval(beat, HEARTBEAT_INTERVAL_MS);

  let stop: Error | undefined;
  const inFlight = new Map<string, { startedAt: number; ended: Promise<void> }>();
  const countedAgainstConcurrency = () => {
    const after = request.stragglerAfterMs;
    if (after === undefined) return inFlight.size;
    let young = 0;
    for (const { startedAt } of inFlight.values()) if (Date.now() - startedAt <= after) young += 1;
    return young + Math.max(0, inFlight.size - young - MAX_EXEMPT_STRAGGLERS);
  };
  // Wakes when an upload ends, or when the youngest upload in flight turns into a straggler.
  const nextChange = async () => {
    const ends = [...inFlight.values()].map((e) => e.ended);
    const after = request.stragglerAfterMs;
    if (after === undefined) return Promise.race(ends);
    const youngest = Math.min(...[...inFlight.values()].map((e) => e.startedAt));
    const turnsIn = Math.max(1, youngest + after + 1 - Date.now());
    let timer: NodeJS.Timeout | undefined;
    const turned = new Promise<void>((resolve) => (timer = setTimeout(resolve, turnsIn)));
    try {
      await Promise.race([...ends, turned]);
    } finally {
      clearTimeout(timer);
    }
  };
  const start = (item: SliceItem) => {
    const startedAt = Date.now();
    firstStartedAt ??= startedAt;
    started.add(item.itemId);
    const onAccepted = () => (accepted += 1);
    const ended = uploadWithRetries(item.itemId, { plannedAt, accepted: onAccepted }, sessions, beat, uploadOne).then(
      (result) => {
        const endedAt = Date.now();
        done.set(item.itemId, { ...result, durationMs: endedAt - startedAt, endedAt });
        delete sessions[item.itemId];
        beat();
      },
      (err: unknown) => {
        stop ??= err instanceof Error ? err : new Error(String(err));
        if (stop === err && err instanceof TypedFailure && err.type === FailureType.RateLimited) {
          rateLimitedAt = Date.now();
          const seconds = (rateLimitedAt - (firstStartedAt ?? rateLimitedAt)) / 1000;
          acceptedPerSecond = accepted > 0 && seconds > 0 ? accepted / seconds : undefined;
        }
      },
    );
    inFlight.set(item.itemId, { startedAt, ended: ended.finally(() => inFlight.delete(item.itemId)) });
  };

  try {
    // A slice that starts late (a busy worker, a slow task dispatch) or waits for a free upload
    // keeps its items' spacing rather than sending the overdue ones at once: a burst at the edge
    // of the token bucket is a 429.
    let previous: { planned: number; actual: number } | undefined;
    for (const item of todo) {
      while (stop === undefined && countedAgainstConcurrency() >= Math.max(1, request.concurrency)) await nextChange();
      if (stop !== undefined) break;
      const startAt = previous
        ? Math.max(item.startAt, previous.actual + (item.startAt - previous.planned))
        : item.startAt;
      const waitMs = Math.min(MAX_START_WAIT_MS, startAt - Date.now());
      if (waitMs > 0) await sleep(waitMs); // throws if the activity is cancelled
      if (stop !== undefined) break;
      previous = { planned: item.startAt, actual: Date.now() };
      start(item);
    }
    await Promise.all([...inFlight.values()].map((e) => e.ended));
  } finally {
    clearInterval(ticker);
  }
  // The next attempt, or the workflow, goes on from here.
  beat();
  const items = request.items.flatMap((i) => done.get(i.itemId) ?? []);
  if (stop === undefined) return { items, unfinished: [], unstarted, ...(rateLimitedAt ? { rateLimitedAt } : {}) };
  if (stop instanceof TypedFailure && PAUSES.includes(stop.type)) {
    const unfinished = request.items.filter((i) => !done.has(i.itemId)).map((i) => i.itemId);
    return { items, unfinished, unstarted: [], pause: { type: stop.type as PauseFailure, message: stop.message } };
  }
  throw stop;
}

/** One item's upload, tried again here after a transient failure or write contention. */
async function uploadWithRetries(
  itemId: string,
  { plannedAt, accepted }: Pick<ItemContext, 'plannedAt' | 'accepted'>,
  sessions: Record<string, SessionProgress>,
  beat: () => void,
  uploadOne: (itemId: string, context: ItemContext) => Promise<Omit<SliceItemResult, 'durationMs' | 'endedAt'>>,
): Promise<Omit<SliceItemResult, 'durationMs' | 'endedAt'>> {
  for (let tries = 1; ; tries++) {
    const context: ItemContext = {
      resume: sessions[itemId],
      report: (p) => {
        sessions[itemId] = p;
        beat();
      },
      tries,
      plannedAt,
      accepted,
    };
    try {
      const result = await uploadOne(itemId, context);
      // An item tried more than once here did not go through cleanly: the pacer must not time it.
      return tries > 1 ? { ...result, attempts: Math.max(result.attempts, tries) } : result;
    } catch (err) {
      if (!(err instanceof TypedFailure)) throw err;
      const { type, retryDelayMs, retryAfterMs } = err.failure;
      // A transient failure ends in a deferral after a few tries (see settleFailure), so this ends.
      const retryHere =
        type === FailureType.Transient || (type === FailureType.WriteContention && tries < WRITE_CONTENTION_TRIES);
      if (!retryHere) throw err;
      await sleep(retryDelayMs ?? retryAfterMs ?? jittered(1_000));
    }
  }
}

function jittered(ms: number): number {
  return Math.round(ms * (0.8 + 0.4 * Math.random()));
}
