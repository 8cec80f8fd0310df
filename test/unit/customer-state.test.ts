import { describe, expect, it } from 'vitest';
import type { BatchResult } from '../../workflows/batch.js';
import { CustomerState, quotaResetAfter } from '../../workflows/customer-state.js';
import { initialPacing, plan } from '../../workflows/pacing/controller.js';

const batch = (o: Partial<BatchResult> = {}): BatchResult => ({
  archived: 0,
  failed: 0,
  deferred: 0,
  rateLimited: 0,
  writeContention: 0,
  unfinished: 0,
  lastError: undefined,
  pauseAs: undefined,
  ...o,
});
const at = (iso: string) => Date.parse(iso);
const pacing = { state: initialPacing(), plan: plan(initialPacing()) };

describe('CustomerState', () => {
  it("an operator's pause keeps a pause already in force, and a resume reports what the loop decided", () => {
    const c = new CustomerState('acme', { pausedState: 'needs-reauth', pauseReason: 'token revoked' });
    expect(c.pauseByOperator('audit')).toEqual({
      outcome: 'already-paused',
      state: 'needs-reauth',
      reason: 'token revoked',
    });
    expect(c.pausedAs).toBe('needs-reauth');
    c.refuseResume('resume refused: Dropbox still rejects the credentials (invalid_access_token)');
    expect(c.resumeOutcome()).toMatchObject({ outcome: 'refused', state: 'needs-reauth' });
    c.resume();
    expect(c.resumeOutcome()).toEqual({ outcome: 'resumed', state: 'running' });
    expect(c.pauseByOperator('audit')).toEqual({ outcome: 'paused', state: 'paused', reason: 'audit' });
  });

  it('adds up batches and counts the batch in flight before it finishes', () => {
    const c = new CustomerState('acme');
    c.addBatch(batch({ archived: 10, failed: 1, rateLimited: 2 }), 2, at('2026-12-02T10:00:00Z'));
    c.progress({ archived: 3, failed: 0, deferred: 0, rateLimited: 1, writeContention: 0 });
    expect(c.liveTotals(at('2026-12-02T10:00:05Z'))).toMatchObject({
      archived: 13,
      failed: 1,
      rateLimited: 3,
      archivedToday: 13,
      batches: 1,
    });
    c.addBatch(batch({ archived: 5 }), 1, at('2026-12-02T10:00:06Z'));
    expect(c.liveTotals(at('2026-12-02T10:00:06Z'))).toMatchObject({ archived: 15, archivedToday: 15, batches: 2 });
    expect(c.ratePerSecond).toBe(5);
  });

  it('rolls "archived today" over at UTC midnight, in the totals and in what is shown live', () => {
    const c = new CustomerState('acme', {
      totals: { archived: 100, archivedToday: 40, day: '2026-12-01', failed: 0, rateLimited: 0, batches: 3 },
    });
    expect(c.liveTotals(at('2026-12-01T23:59:59Z')).archivedToday).toBe(40);
    expect(c.liveTotals(at('2026-12-02T00:00:01Z')).archivedToday).toBe(0);
    c.addBatch(batch({ archived: 7 }), 1, at('2026-12-02T00:00:02Z'));
    expect(c.liveTotals(at('2026-12-02T00:00:03Z'))).toMatchObject({
      archived: 107,
      archivedToday: 7,
      day: '2026-12-02',
    });
  });

  it('pauses when a batch says so, keeps the last error, and a resume clears both', () => {
    const c = new CustomerState('acme');
    c.resumeRequested = true;
    c.addBatch(
      batch({ lastError: 'item 4: invalid_access_token', pauseAs: { state: 'needs-reauth', reason: 'token revoked' } }),
      1,
      Date.now(),
    );
    expect(c).toMatchObject({
      pausedAs: 'needs-reauth',
      pauseReason: 'token revoked',
      lastError: 'item 4: invalid_access_token',
      resumeRequested: false,
    });
    c.addBatch(batch(), 1, Date.now());
    expect(c.lastError).toBe('item 4: invalid_access_token');
    c.resume();
    expect(c).toMatchObject({ pausedAs: undefined, pauseReason: undefined, lastError: undefined });
  });

  it('a refused resume stays paused and says why; a reconnect ends only a needs-reauth pause', () => {
    const c = new CustomerState('acme', { pausedState: 'needs-reauth', pauseReason: 'revoked' });
    expect(c.state).toBe('needs-reauth');
    c.resumeRequested = true;
    c.refuseResume('resume refused: still invalid');
    expect(c).toMatchObject({
      pausedAs: 'needs-reauth',
      pauseReason: 'resume refused: still invalid',
      resumeRequested: false,
    });
    expect(c.reconnected()).toBe('running');
    expect(c.pausedAs).toBeUndefined();
    const paused = new CustomerState('acme', { pausedState: 'paused', pauseReason: 'by operator' });
    expect(paused.reconnected()).toBe('paused');
    expect(paused.pauseReason).toBe('by operator');
  });

  it('merges operator caps, and null removes one', () => {
    const c = new CustomerState('acme', { operatorLimits: { maxConcurrency: 4 } });
    expect(c.setLimits({ maxRatePerSecond: 5 })).toEqual({ maxConcurrency: 4, maxRatePerSecond: 5 });
    expect(c.setLimits({ maxConcurrency: null })).toEqual({ maxRatePerSecond: 5 });
  });

  it('carries totals, pause and caps over to the next run, and the next run goes on from them', () => {
    const c = new CustomerState('acme');
    c.addBatch(batch({ archived: 9, failed: 2 }), 1, at('2026-12-02T08:00:00Z'));
    c.setLimits({ maxBatchSize: 50 });
    c.pause('paused', 'maintenance');
    const next = new CustomerState('acme', structuredClone(c.carryOver()));
    expect(next.status(at('2026-12-02T09:00:00Z'), pacing)).toMatchObject({
      state: 'paused',
      pauseReason: 'maintenance',
      operatorLimits: { maxBatchSize: 50 },
      totals: { archived: 9, failed: 2, archivedToday: 9, batches: 1 },
    });
  });

  it('a quota-exceeded pause says when it ends, keeps that end across continue-as-new, and a resume clears it', () => {
    const c = new CustomerState('acme');
    c.addBatch(
      batch({ pauseAs: { state: 'quota-exceeded', reason: 'Dropbox answered 403' } }),
      1,
      at('2026-12-31T23:59:00Z'),
    );
    c.pauseUntil(quotaResetAfter(at('2026-12-31T23:59:00Z')));
    const next = new CustomerState('acme', structuredClone(c.carryOver()));
    expect(next.pausedUntil).toBe(at('2027-01-01T00:00:00Z'));
    expect(next.status(at('2027-01-01T00:00:01Z'), pacing)).toMatchObject({
      state: 'quota-exceeded',
      pausedUntil: '2027-01-01T00:00:00.000Z',
      pauseReason: 'resumes by itself at 2027-01-01T00:00:00.000Z; Dropbox answered 403',
    });
    next.resume();
    expect(next.status(at('2027-01-01T00:00:02Z'), pacing)).toMatchObject({
      pausedUntil: undefined,
      pauseReason: undefined,
    });
    expect(next.carryOver()).not.toHaveProperty('pausedUntilMs');
  });

  it('the Data Transport quota resets at midnight UTC on the first of the next month', () => {
    expect(new Date(quotaResetAfter(at('2026-12-04T18:00:00Z'))).toISOString()).toBe('2027-01-01T00:00:00.000Z');
    expect(new Date(quotaResetAfter(at('2027-01-31T23:59:59.999Z'))).toISOString()).toBe('2027-02-01T00:00:00.000Z');
    expect(new Date(quotaResetAfter(at('2027-02-01T00:00:00Z'))).toISOString()).toBe('2027-03-01T00:00:00.000Z');
    // Local time zones do not matter: 23:30 on Jan 31 in New York is already February in UTC.
    expect(new Date(quotaResetAfter(at('2027-01-31T23:30:00-05:00'))).toISOString()).toBe('2027-03-01T00:00:00.000Z');
  });

  it('status reports the pacer plan rounded, and the cool-down end as an ISO time', () => {
    const c = new CustomerState('acme');
    c.backlog = 12;
    c.coolingDownUntil = at('2026-12-02T10:00:30Z');
    const s = c.status(at('2026-12-02T10:00:00Z'), {
      state: { ...pacing.state, limitEstimatePerSecond: 9.876 },
      plan: { ratePerSecond: 9.3821, concurrency: 3, batchSize: 94 },
    });
    expect(s).toMatchObject({
      backlog: 12,
      pacedRatePerSecond: 9.38,
      limitEstimatePerSecond: 9.88,
      concurrency: 3,
      batchSize: 94,
      coolingDownUntil: '2026-12-02T10:00:30.000Z',
    });
  });
});
