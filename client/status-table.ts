import type { CustomerStatus } from '../workflows/messages.js';
import type { ArchiverState } from '../workflows/names.js';

/**
 * States an operator must act on, or at least know of (quota-exceeded resumes by itself when the
 * month ends, and archives nothing until then); `archiver status` exits non-zero when any customer is in one.
 */
export const NEEDS_ATTENTION: ReadonlySet<ArchiverState> = new Set(['needs-reauth', 'storage-full', 'quota-exceeded']);

const ORDER: ArchiverState[] = [
  'needs-reauth',
  'storage-full',
  'quota-exceeded',
  'paused',
  'cooling-down',
  'running',
  'idle',
];

/** Customers needing attention first, then the busiest. */
export function sortForOperators(statuses: CustomerStatus[]): CustomerStatus[] {
  return [...statuses].sort(
    (a, b) =>
      ORDER.indexOf(a.state) - ORDER.indexOf(b.state) ||
      b.backlog - a.backlog ||
      a.customerId.localeCompare(b.customerId),
  );
}

/** How long ago `iso` was, shortly: 45s, 12m, 3h, 2d. */
export function formatAge(iso: string | undefined, now = Date.now()): string {
  if (iso === undefined) return '-';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

/** What a customer's last finished verification found (db/verification.ts). */
export interface LastVerification {
  finishedAt: Date | null;
  missing: number;
  changed: number;
  unknown: number;
}

/**
 * A plain-text table of customer statuses, one row each. RETRYING counts items waiting for their
 * retry time after failing; LAG is the age of the oldest item not yet archived or failed;
 * VERIFIED is the age of the last verification against the customer's Dropbox, and DRIFT what it
 * found missing or changed (re-queued), with files Archiver never wrote as "+N unknown".
 */
export function formatStatusTable(
  statuses: CustomerStatus[],
  now = Date.now(),
  verifications: ReadonlyMap<string, LastVerification> = new Map(),
): string {
  const header = [
    'CUSTOMER',
    'STATE',
    'BACKLOG',
    'RETRYING',
    'LAG',
    'TODAY',
    'ARCHIVED',
    'FAILED',
    '429s',
    'N',
    'W',
    'RATE/s',
    'PACE/s',
    'LIMIT≈/s',
    'CAPS',
    'VERIFIED',
    'DRIFT',
    'PAUSE REASON / LAST ERROR',
  ];
  const rows = sortForOperators(statuses).map((s) => [
    s.customerId,
    s.state,
    String(s.backlog),
    String(s.retryWaiting ?? 0),
    formatAge(s.oldestWaitingSince, now),
    String(s.totals.archivedToday ?? 0),
    String(s.totals.archived),
    String(s.totals.failed),
    String(s.totals.rateLimited),
    String(s.batchSize),
    String(s.concurrency),
    s.ratePerSecond.toFixed(1),
    s.pacedRatePerSecond?.toFixed(1) ?? '-',
    s.limitEstimatePerSecond?.toFixed(1) ?? '-',
    formatCaps(s),
    formatAge(verifications.get(s.customerId)?.finishedAt?.toISOString(), now),
    formatDrift(verifications.get(s.customerId)),
    truncate(s.pauseReason ?? s.lastError ?? '', 90),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [header, ...rows]
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function formatCaps({ operatorLimits: caps }: CustomerStatus): string {
  const parts = [
    caps.maxRatePerSecond ? `${caps.maxRatePerSecond}/s` : undefined,
    caps.maxConcurrency ? `W≤${caps.maxConcurrency}` : undefined,
    caps.maxBatchSize ? `N≤${caps.maxBatchSize}` : undefined,
  ].filter((p) => p !== undefined);
  return parts.length ? parts.join(',') : '-';
}

function formatDrift(run: LastVerification | undefined): string {
  if (run === undefined) return '-';
  const drift = String(run.missing + run.changed);
  return run.unknown > 0 ? `${drift} (+${run.unknown} unknown)` : drift;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
