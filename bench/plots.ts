/** Per-scenario plots (throughput, 429s, the controller's rate/N/W over time) with ECharts, as SVG and PNG. */
import { writeFileSync } from 'node:fs';
import { Resvg } from '@resvg/resvg-js';
import * as echarts from 'echarts';
import { perSecond } from './metrics.js';
import { WORKER_SLOTS } from './designs/types.js';
import type { ResultRow } from './scenarios/types.js';

const WIDTH = 1200;
const HEIGHT = 940;

/** A row's design with its variant: commit mode, and whether Temporal honoured fairness keys. */
export function designLabel(row: ResultRow): string {
  const variants = [
    ...(typeof row.commitMode === 'string' ? [row.commitMode] : []),
    ...(typeof row.fairness === 'boolean' ? [`fairness ${row.fairness ? 'on' : 'off'}`] : []),
    ...(typeof row.workerSlots === 'number' && row.workerSlots !== WORKER_SLOTS ? [`${row.workerSlots} slots`] : []),
  ];
  return variants.length > 0 ? `${row.design} (${variants.join(', ')})` : row.design;
}

/** Writes `<base>.svg` and `<base>.png`; returns their paths, or [] when no row has a series. */
export function plotScenario(rows: ResultRow[], base: string): string[] {
  const withSeries = rows.filter((r) => r.series && r.series.length > 1);
  if (withSeries.length === 0) return [];
  const scenario = withSeries[0]?.scenario ?? '';
  const grids = [
    { top: 60, height: 180 },
    { top: 300, height: 180 },
    { top: 540, height: 180 },
    { top: 780, height: 120 },
  ].map((g) => ({ ...g, left: 70, right: 190 }));
  const series: echarts.SeriesOption[] = [];
  for (const row of withSeries) {
    const rates = perSecond(row.series ?? []);
    series.push({
      name: `${designLabel(row)} items/s`,
      type: 'line',
      showSymbol: false,
      xAxisIndex: 0,
      yAxisIndex: 0,
      data: rates.map((p) => [p.t, p.itemsPerSecond]),
    });
    series.push({
      name: `${designLabel(row)} 429/s`,
      type: 'line',
      showSymbol: false,
      xAxisIndex: 1,
      yAxisIndex: 1,
      data: rates.map((p) => [p.t, p.rejectedPerSecond]),
    });
    const controlled = (row.series ?? []).filter((s) => s.batchSize !== undefined);
    if (controlled.length > 0) {
      const line = (
        name: string,
        grid: number,
        value: (s: (typeof controlled)[number]) => number | undefined,
        step = false,
      ): void => {
        const data = controlled.filter((s) => value(s) !== undefined).map((s) => [s.t, value(s) as number]);
        if (data.length > 0)
          series.push({
            name: `${designLabel(row)} ${name}`,
            type: 'line',
            showSymbol: false,
            ...(step ? { step: 'end' as const } : {}),
            xAxisIndex: grid,
            yAxisIndex: grid,
            data,
          });
      };
      line('paced rate', 2, (s) => s.pacedRatePerSecond);
      line('limit estimate', 2, (s) => s.limitEstimatePerSecond, true);
      line('W', 2, (s) => s.concurrency, true);
      line('N', 3, (s) => s.batchSize, true);
    }
  }
  const limitRow = withSeries.find((r) => r.series?.some((s) => s.limit !== null));
  if (limitRow) {
    series.push({
      name: 'limit R',
      type: 'line',
      step: 'end',
      showSymbol: false,
      lineStyle: { type: 'dashed', color: '#000' },
      itemStyle: { color: '#000' },
      xAxisIndex: 0,
      yAxisIndex: 0,
      data: (limitRow.series ?? []).map((s) => [s.t, s.limit ?? 0]),
      markLine: {
        symbol: 'none',
        label: { formatter: '{b}' },
        data: (limitRow.events ?? []).map((e) => ({ name: e.label, xAxis: e.t })),
      },
    });
  }
  const titles = [
    'archived items/s',
    'upload requests answered 429, per s',
    'archiver controller: paced rate and limit estimate (uploads/s), W',
    'archiver controller: N (items per batch)',
  ];
  const chart = echarts.init(null, null, { renderer: 'svg', ssr: true, width: WIDTH, height: HEIGHT });
  chart.setOption({
    animation: false,
    backgroundColor: '#fff',
    title: [
      { text: `scenario: ${scenario}`, left: 'center', top: 5 },
      ...grids.map((g, i) => ({ text: titles[i], left: 70, top: g.top - 25, textStyle: { fontSize: 13 } })),
    ],
    legend: { type: 'plain', orient: 'vertical', right: 0, top: 60, textStyle: { fontSize: 10 } },
    grid: grids,
    xAxis: grids.map((_, i) => ({ type: 'value', gridIndex: i, name: 's', min: 0 })),
    yAxis: grids.map((_, i) => ({ type: 'value', gridIndex: i })),
    series,
  });
  const svg = chart.renderToSVGString();
  chart.dispose();
  writeFileSync(`${base}.svg`, svg);
  const png = new Resvg(svg, { background: '#fff', font: { loadSystemFonts: true } }).render().asPng();
  writeFileSync(`${base}.png`, png);
  return [`${base}.svg`, `${base}.png`];
}
