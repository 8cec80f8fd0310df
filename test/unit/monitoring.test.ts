// The alert rules and the Grafana dashboard shipped in deploy/, checked against what the worker exports.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const DEPLOY = fileURLToPath(new URL('../../deploy/', import.meta.url));
/** What a worker's endpoint serves of Archiver's own (activities/metrics.ts, workflows/web-ui.ts), and Prometheus's `up`. */
const EXPORTED = [
  'archiver_items_archived',
  'archiver_bytes_archived',
  'archiver_dropbox_throttled',
  'archiver_backlog',
  'archiver_rate',
  'archiver_state',
  'archiver_oldest_waiting_timestamp_seconds',
  'archiver_state_reported_timestamp_seconds',
  'archiver_archive_drift',
  'archiver_verified_timestamp_seconds',
  'up',
];
/** Exported for the alert rules' bookkeeping (which worker reported a customer last), not worth a chart. */
const NOT_CHARTED = ['archiver_state_reported_timestamp_seconds', 'archiver_verified_timestamp_seconds'];

function promtool(...args: string[]): string {
  const found = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  if (found.error) throw new Error("promtool is not installed: install Debian's prometheus package (.ci/run does)");
  return execFileSync('promtool', args, { cwd: `${DEPLOY}prometheus`, encoding: 'utf8', timeout: 60_000 });
}

/** Metric names an expression reads (identifiers followed by a selector or range, not functions or labels). */
function metricsIn(expr: string): string[] {
  const withoutStrings = expr
    .replace(/"[^"]*"/g, '""')
    .replace(/\{[^}]*\}/g, '{}')
    // Recording rules' own series (level:metric), and the label lists of on (…) and group_left (…).
    .replace(/[a-z_]+:[a-z_]+/g, '')
    .replace(/\b(on|group_left|by)\s*\([^)]*\)/g, '');
  const names = [...withoutStrings.matchAll(/([a-z_][a-z0-9_]*)\s*(?=\{|\[|\)|\s*==|\s*>|$)/g)].map(
    (m) => m[1] as string,
  );
  const functionsAndKeywords = new Set([
    'sum',
    'max',
    'rate',
    'by',
    'time',
    'customer_id',
    'state',
    'reason',
    'instance',
    'and',
  ]);
  return names.filter((n) => !functionsAndKeywords.has(n));
}

describe('monitoring shipped in deploy/', () => {
  it('has alert rules that promtool accepts, and whose unit tests pass', () => {
    expect(promtool('check', 'rules', 'archiver-alerts.yml')).toMatch(/SUCCESS: 6 rules found/);
    expect(promtool('test', 'rules', 'archiver-alerts.test.yml')).toMatch(/SUCCESS/);
  });

  it('alerts only on metrics the worker exports', () => {
    const rules = readFileSync(`${DEPLOY}prometheus/archiver-alerts.yml`, 'utf8');
    const exprs = [...rules.matchAll(/expr: (\|\n(?:\s{10}.*\n)+|.*)/g)].map((m) => m[1] as string);
    expect(exprs).toHaveLength(6);
    for (const expr of exprs) for (const name of metricsIn(expr)) expect(EXPORTED, expr).toContain(name);
  });

  it('has a Grafana dashboard that parses and charts only exported metrics', () => {
    const dashboard = JSON.parse(readFileSync(`${DEPLOY}grafana/archiver-dashboard.json`, 'utf8')) as {
      uid: string;
      panels: { title: string; targets: { expr: string }[] }[];
    };
    expect(dashboard.uid).toBe('archiver-customers');
    expect(dashboard.panels.length).toBeGreaterThanOrEqual(6);
    const charted = new Set<string>();
    for (const panel of dashboard.panels) {
      expect(panel.targets.length, panel.title).toBeGreaterThan(0);
      for (const { expr } of panel.targets) for (const name of metricsIn(expr)) charted.add(name);
    }
    for (const name of charted) expect(EXPORTED).toContain(name);
    // Every per-customer metric has a panel.
    for (const name of EXPORTED.filter((n) => !NOT_CHARTED.includes(n))) expect([...charted], name).toContain(name);
  });
});
