import type { CustomerStatus } from '../workflows/messages.js';
import type { ArchiverState } from '../workflows/names.js';

/** States an operator must act on; `archiver status` exits non-zero when any customer is in one. */
export const NEEDS_ATTENTION: ReadonlySet<ArchiverState> = new Set(['needs-reauth', 'storage-full']);

const ORDER: ArchiverState[] = ['needs-reauth', 'storage-full', 'paused', 'cooling-down', 'running', 'idle'];

/** Customers needing attention first, then the busiest. */
export function sortForOperators(statuses: CustomerStatus[]): CustomerStatus[] {
  return [...statuses].sort(
    (a, b) =>
      ORDER.indexOf(a.state) - ORDER.indexOf(b.state) ||
      b.backlog - a.backlog ||
      a.customerId.localeCompare(b.customerId),
  );
}

/** A plain-text table of customer statuses, one row each. */
export function formatStatusTable(statuses: CustomerStatus[]): string {
  const header = [
    'CUSTOMER',
    'STATE',
    'BACKLOG',
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
    'PAUSE REASON / LAST ERROR',
  ];
  const rows = sortForOperators(statuses).map((s) => [
    s.customerId,
    s.state,
    String(s.backlog),
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
    truncate(s.pauseReason ?? s.lastError ?? '', 70),
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

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
