/** The outputs: a table on stdout, results JSON (timestamped and latest), Markdown summary, plots. */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { designLabel, plotScenario } from './plots.js';
import type { ResultRow } from './scenarios/types.js';

export const RESULTS_DIR = new URL('./results/', import.meta.url).pathname;

/** The headline figures of each scenario, in table order. */
const KEYS: Record<string, string[]> = {
  steady: ['rateRatio', 'share429', 'achievedRate', 'seconds'],
  'limit-change': [
    'secondsTo429Under1pct',
    'secondsTo90pctOfNewLimit',
    'afterHalving90pct',
    'afterDoubling429Under1pct',
  ],
  'huge-and-small': [
    'smallP95Ratio',
    'smallP95OverOptimum',
    'aloneP95OverOptimum',
    'smallP50Seconds',
    'smallP95Seconds',
    'aloneP95Seconds',
    'optimumSeconds',
    'workerSlots',
  ],
  ceiling: [
    'itemsPerSecond',
    'emulatorItemsPerSecond',
    'ratioToEmulator',
    'eventsPerItem',
    'activityTasksPerItem',
    'cpuSecondsPer1000Items',
  ],
  'warm-start': [
    'firstRunSecondsTo90pct',
    'secondRunSecondsTo90pct',
    'storedLimitEstimate',
    'firstRunSeconds',
    'secondRunSeconds',
  ],
  'live-backfill': [
    'liveP95Ratio',
    'liveP95Seconds',
    'aloneP95Seconds',
    'backfillShareOfR',
    'liveP50Seconds',
    'aloneP50Seconds',
    'oldestFirstP95Seconds',
    'backfillItems',
  ],
  scale: [
    'customers',
    'startAllSeconds',
    'workerRssMB',
    'idleCpuPercent',
    'wakeSeconds',
    'maxCachedWorkflows',
    'serverIdleCpuPercent',
  ],
};

function fmt(v: unknown): string {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return typeof v === 'string' ? v : JSON.stringify(v);
}

export function tableLines(rows: ResultRow[]): string[] {
  const lines: string[] = [];
  for (const scenario of Object.keys(KEYS)) {
    const rs = rows.filter((r) => r.scenario === scenario);
    if (rs.length === 0) continue;
    const keys = KEYS[scenario] ?? [];
    const header = ['scenario', 'design', ...keys, 'note'];
    lines.push(`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`);
    for (const r of rs) {
      const design = designLabel(r);
      const note = r.error ? `ERROR: ${fmt(r.error)}` : r.timedOut ? 'timed out' : '';
      lines.push(`| ${[scenario, design, ...keys.map((k) => fmt(r[k])), note].join(' | ')} |`);
    }
    lines.push('');
  }
  return lines;
}

/** One sentence on the few-slot runs with and without Temporal fairness: the archiver's smallP95Ratio both ways. */
export function fairnessLines(rows: ResultRow[]): string[] {
  const off = rows.find((r) => r.scenario === 'huge-and-small' && r.design === 'archiver' && r.fairness === false);
  const on = rows.find(
    (r) =>
      r.scenario === 'huge-and-small' &&
      r.design === 'archiver' &&
      r.fairness === true &&
      r.workerSlots === off?.workerSlots,
  );
  if (!on || !off) return [];
  return [
    `**Fairness (huge-and-small, archiver, ${fmt(on.workerSlots)} worker slots):** small customers' p95 beside the huge one over alone, ` +
      `smallP95Ratio = ${fmt(on.smallP95Ratio)} on a Temporal server with fairness on (matching.enableFairness), ${fmt(off.smallP95Ratio)} with it off (FIFO) ` +
      `(p95 ${fmt(on.smallP95Seconds)} s vs ${fmt(off.smallP95Seconds)} s).`,
    '',
  ];
}

export function writeResults(
  rows: ResultRow[],
  meta: Record<string, unknown>,
): { json: string; md: string; plots: string[] } {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const json = join(RESULTS_DIR, `${stamp}.json`);
  writeFileSync(json, JSON.stringify({ meta, results: rows }, null, 1));
  copyFileSync(json, join(RESULTS_DIR, 'latest.json'));
  const plots: string[] = [];
  for (const scenario of new Set(rows.map((r) => r.scenario))) {
    plots.push(
      ...plotScenario(
        rows.filter((r) => r.scenario === scenario),
        join(RESULTS_DIR, `${stamp}-${scenario}`),
      ),
    );
  }
  const md = join(RESULTS_DIR, `${stamp}.md`);
  writeFileSync(
    md,
    [
      `# Archiver benchmark ${stamp}`,
      '',
      `Run: \`${String(meta.command)}\` on ${String(meta.cpus)} CPUs, Node ${process.version}, ${meta.quick ? '**quick (smoke) sizes**' : 'full sizes'}.`,
      '',
      ...tableLines(rows),
      ...fairnessLines(rows),
      '## Definitions',
      '',
      '- `rateRatio`: items archived per second from the 10th second to the last archival (Postgres archived_at), over R. `share429`: upload requests (files/upload*) the emulator answered 429, over all upload requests.',
      '- `secondsTo429Under1pct` (after the halving): seconds from the change until every 5-s window up to the next change has < 1% of upload requests answered 429. `secondsTo90pctOfNewLimit` (after the doubling): seconds until the rate over the last ≤ 5 s (after the change) reaches 90% of the new R. `afterHalving90pct`/`afterDoubling429Under1pct`: the same figures for the other change.',
      "- `smallP95OverOptimum`/`aloneP95OverOptimum`: the small customers' p95 beside the huge one, and alone, over their optimum `optimumSeconds` = items per small customer / R plus the median files/upload time (`medianUploadSeconds`, one at a time through the SDK with nothing else running): what a customer that started each upload exactly at R would see. " +
        "`smallP95Ratio`: p95 insert→archived latency of the small customers beside the huge one, over the same small customers run alone (on the same Temporal server). Every design runs with the worker's usual 100 activity slots (baselines: threads). The archiver then runs twice more with `workerSlots` few enough that tasks wait for a slot: `fairness on` = the dev server honours the activities' fairness key (the customer id, `matching.enableFairness=true`, as `npm start` runs it); `fairness off` = a second dev server with `matching.enableFairness=false` dispatches the task queue FIFO.",
      '- `warm-start`: one customer at R = 50/s drains its items, is stopped, gets as many new items and is started again (a new workflow). `firstRunSecondsTo90pct`/`secondRunSecondsTo90pct`: seconds from each start until 45 items were archived within one second; the second run starts at the limit the first one learned (`storedLimitEstimate`, kept in Postgres).',
      "- `itemsPerSecond`: items archived / seconds to the last archival with no rate limit; `emulatorItemsPerSecond`: files/upload through the Dropbox SDK at 64 at once, nothing else running. `eventsPerItem`/`activityTasksPerItem` (archiver only): history events and activity task executions (each started activity's attempts) over archived items, from the real histories of every run of the customers' workflows. `cpuSecondsPer1000Items`: CPU-seconds of the bench process during the run per 1,000 archived items; it holds the worker (or the baseline's threads) and also the emulator and media server, which cost the same per item for every design; Temporal and Postgres are separate processes.",
      "- `scale`: the real worker (`workers/main.ts`) runs as its own process, on the production task queue in its own namespace; `workerRssMB`/`idleCpuPercent` are that process (and any children) from /proc after every customer is idle, `serverIdleCpuPercent` the Temporal dev server meanwhile (100 = one core); `startAllSeconds`: starting every customer's workflow from a client; `wakeSeconds`: median of 3 inserts for idle customers until archived, woken by the worker's own notifier (LISTEN/NOTIFY); `maxCachedWorkflows`: the worker's workflow cache (ARCHIVER_MAX_CACHED_WORKFLOWS).",
      "- `live-backfill` (archiver only): one customer at R = 50/s with `backfillItems` that occurred 30 days ago gets live items (occurred now) at 20% of R for 120 s (30 s with --quick), after 10 s of backfill; the same live stream runs alone for another customer. `liveP95Seconds`/`aloneP95Seconds`: p95 insert→archived of the live items with the backfill and alone; `liveP95Ratio` their ratio (goal ≤ 1.5). `backfillShareOfR`: backfill items archived per second while the live stream ran, over R. `oldestFirstP95Seconds`: the live p95 with the backfill when every lease takes the oldest first (live window 0), as before live items came first. The bench's worker has no notifier, so each insert signals itemsAvailable as the notifier would.",
      "- Baselines: `cron` = every 5 s lease 500 items per customer and upload all at once (threads from a 100-slot pool, plain exponential backoff 1 s…32 s holding the thread); `fixed` = W=16 per customer, leases of 200, retries after Retry-After, no adaptation, 100-slot pool. Both call the same activities (createActivities) against the same emulator, with as many threads as the archiver's worker has activity slots (100; huge-and-small: `workerSlots`).",
      '',
      '## Plots',
      '',
      ...plots.filter((p) => p.endsWith('.png')).map((p) => `![${p}](${p.slice(RESULTS_DIR.length)})`),
      '',
    ].join('\n'),
  );
  return { json, md, plots };
}
