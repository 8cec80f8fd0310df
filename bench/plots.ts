/** Per-scenario plots (throughput, 429s, the controller's rate/N/W over time) with ECharts, as SVG and PNG. */
import { writeFileSync } from 'node:fs';
import { Resvg } from '@resvg/resvg-js';
import * as echarts from 'echarts';
import { perSecond } from './metrics.js';
import type { ResultRow } from './scenarios/types.js';

const WIDTH = 1100;
const HEIGHT = 900;

function label(row: ResultRow): string {
  return typeof row.commitMode === 'string' ? `${row.design} (${row.commitMode})` : row.design;
}

/** Writes `<base>.svg` and `<base>.png`; returns their paths, or [] when no row has a series. */
export function plotScenario(rows: ResultRow[], base: string): string[] {
  const withSeries = rows.filter((r) => r.series && r.series.length > 1);
  if (withSeries.length === 0) return [];
  const scenario = withSeries[0]?.scenario ?? '';
  const grids = [{ top: 60, height: 200 }, { top: 340, height: 200 }, { top: 620, height: 200 }].map((g) => ({ ...g, left: 70, right: 150 }));
  const series: echarts.SeriesOption[] = [];
  for (const row of withSeries) {
    const rates = perSecond(row.series ?? []);
    series.push({ name: `${label(row)} items/s`, type: 'line', showSymbol: false, xAxisIndex: 0, yAxisIndex: 0, data: rates.map((p) => [p.t, p.itemsPerSecond]) });
    series.push({ name: `${label(row)} 429/s`, type: 'line', showSymbol: false, xAxisIndex: 1, yAxisIndex: 1, data: rates.map((p) => [p.t, p.rejectedPerSecond]) });
    const controlled = (row.series ?? []).filter((s) => s.batchSize !== undefined);
    if (controlled.length > 0) {
      series.push({ name: `${label(row)} rate (wf)`, type: 'line', showSymbol: false, xAxisIndex: 2, yAxisIndex: 2, data: controlled.map((s) => [s.t, s.ratePerSecond ?? 0]) });
      series.push({ name: `${label(row)} N`, type: 'line', step: 'end', showSymbol: false, xAxisIndex: 2, yAxisIndex: 2, data: controlled.map((s) => [s.t, s.batchSize ?? 0]) });
      series.push({ name: `${label(row)} W`, type: 'line', step: 'end', showSymbol: false, xAxisIndex: 2, yAxisIndex: 2, data: controlled.map((s) => [s.t, s.concurrency ?? 0]) });
    }
  }
  const limitRow = withSeries.find((r) => r.series?.some((s) => s.limit !== null));
  if (limitRow) {
    series.push({
      name: 'limit R', type: 'line', step: 'end', showSymbol: false, lineStyle: { type: 'dashed', color: '#000' }, itemStyle: { color: '#000' }, xAxisIndex: 0, yAxisIndex: 0,
      data: (limitRow.series ?? []).map((s) => [s.t, s.limit ?? 0]),
      markLine: { symbol: 'none', label: { formatter: '{b}' }, data: (limitRow.events ?? []).map((e) => ({ name: e.label, xAxis: e.t })) },
    });
  }
  const titles = ['archived items/s', 'upload requests answered 429, per s', 'archiver controller: rate (items/s), N, W'];
  const chart = echarts.init(null, null, { renderer: 'svg', ssr: true, width: WIDTH, height: HEIGHT });
  chart.setOption({
    animation: false,
    backgroundColor: '#fff',
    title: [{ text: `scenario: ${scenario}`, left: 'center', top: 5 }, ...grids.map((g, i) => ({ text: titles[i], left: 70, top: g.top - 25, textStyle: { fontSize: 13 } }))],
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
