import type { TopLevelSpec } from 'vega-lite';
import type { Mode } from '../settings.js';
import { CHART_FONT } from './render.js';
import { MEAN_OVER_TASKS, type FidelityPoint, type HeatCell, type KeptBin, type ScorePoint } from './data.js';

/** Vega-Lite specs of the report's charts. Colors follow one method order in every chart. */

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

const config = {
  font: CHART_FONT,
  view: { stroke: '#ddd' },
  axis: { labelFontSize: 11, titleFontSize: 12 },
  header: { labelFontSize: 12, titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 12, symbolOpacity: 1 },
};

/** Tableau 10, then ten more colors far from those: a method keeps its color in every chart. */
const PALETTE = [
  '#4c78a8',
  '#f58518',
  '#e45756',
  '#72b7b2',
  '#54a24b',
  '#eeca3b',
  '#b279a2',
  '#ff9da6',
  '#9d755d',
  '#bab0ac',
  '#1b9e77',
  '#7570b3',
  '#e7298a',
  '#66a61e',
  '#a6761d',
  '#17becf',
  '#bcbd22',
  '#393b79',
  '#8c6d31',
  '#843c39',
];

/** Color encoding over the methods `present` in a chart, each colored by its place in `all`. */
function methodColor(all: readonly string[], present: readonly string[]) {
  const range = present.map((m) => PALETTE[Math.max(0, all.indexOf(m)) % PALETTE.length]);
  return { field: 'method', type: 'nominal' as const, title: 'method', scale: { domain: [...present], range } };
}

/** Score (0..100) against budget with its 95% interval as a band, one panel per task and one for the mean over tasks. */
export function scoreSpec(points: ScorePoint[], mode: Mode, methods: readonly string[]): TopLevelSpec {
  const tasks = [...new Set(points.map((p) => p.task))].sort((a, b) =>
    a === MEAN_OVER_TASKS ? -1 : b === MEAN_OVER_TASKS ? 1 : a.localeCompare(b),
  );
  const present = methods.filter((m) => points.some((p) => p.method === m));
  const budgets = [...new Set(points.map((p) => p.budget))].sort((a, b) => a - b);
  return {
    $schema: SCHEMA,
    title: `Score against budget (${mode})`,
    data: { values: points },
    facet: { field: 'task', type: 'nominal', title: null, sort: tasks },
    columns: Math.min(3, tasks.length),
    spec: {
      width: 230,
      height: 170,
      encoding: {
        x: {
          field: 'budget',
          type: 'quantitative',
          title: 'budget (entries per KV head)',
          scale: { type: 'log', base: 2, nice: false, padding: 8 },
          axis: { values: budgets, format: 'd' },
        },
        color: methodColor(methods, present),
      },
      layer: [
        // the 95% bootstrap interval of each method's score as a band behind its line
        {
          mark: { type: 'area', opacity: 0.15 },
          encoding: { y: { field: 'lo', type: 'quantitative', title: 'score', scale: { domain: [0, 100] } }, y2: { field: 'hi' } },
        },
        {
          mark: { type: 'line', point: { filled: true, size: 40 }, strokeWidth: 2 },
          encoding: {
            y: { field: 'score', type: 'quantitative', title: 'score', scale: { domain: [0, 100] } },
            tooltip: [
              { field: 'method', type: 'nominal' },
              { field: 'budget', type: 'quantitative' },
              { field: 'score', type: 'quantitative', format: '.1f' },
              { field: 'lo', type: 'quantitative', format: '.1f', title: '95% CI low' },
              { field: 'hi', type: 'quantitative', format: '.1f', title: '95% CI high' },
              { field: 'n', type: 'quantitative', title: 'cases' },
            ],
          },
        },
      ],
    },
    resolve: { scale: { x: 'shared' } },
    config,
  };
}

/** Needle score as a depth x length heat map, one panel per method (columns) and budget (rows). */
export function needleSpec(cells: HeatCell[], mode: Mode, methods: readonly string[]): TopLevelSpec {
  const present = methods.filter((m) => cells.some((c) => c.method === m));
  const lengths = new Set(cells.map((c) => c.length)).size;
  return {
    $schema: SCHEMA,
    title: {
      text: `Needle in a haystack: score by depth and length (${mode})`,
      subtitle: 'columns: method; rows: budget; x: context length in tokens; y: needle depth in % (0 = start)',
      anchor: 'start',
    },
    data: { values: cells },
    facet: {
      column: { field: 'method', type: 'nominal', title: null, sort: present },
      row: {
        field: 'budget',
        type: 'ordinal',
        title: null,
        sort: 'ascending',
        header: { labelExpr: "'budget ' + datum.label", labelAngle: -90 },
      },
    },
    spec: {
      // wide enough for the method names above each panel
      width: Math.max(80, 28 * lengths),
      height: { step: 18 },
      mark: { type: 'rect', stroke: 'white', strokeWidth: 1 },
      encoding: {
        x: { field: 'length', type: 'ordinal', title: null, sort: 'ascending', axis: { labelAngle: -45 } },
        y: { field: 'depth', type: 'ordinal', title: null, sort: 'ascending' },
        color: { field: 'score', type: 'quantitative', title: 'score', scale: { domain: [0, 100], scheme: 'redyellowgreen' } },
        tooltip: [
          { field: 'method', type: 'nominal' },
          { field: 'budget', type: 'ordinal' },
          { field: 'length', type: 'ordinal' },
          { field: 'depth', type: 'ordinal' },
          { field: 'score', type: 'quantitative', format: '.1f' },
        ],
      },
    },
    config,
  };
}

/** Oracle hit rate and attention recall (%) per method, grouped by budget. */
export function fidelitySpec(points: FidelityPoint[], mode: Mode, methods: readonly string[]): TopLevelSpec {
  const present = methods.filter((m) => points.some((p) => p.method === m));
  return {
    $schema: SCHEMA,
    title: `Oracle hit rate and attention recall (${mode})`,
    data: { values: points },
    facet: { column: { field: 'measure', type: 'nominal', title: null, sort: ['oracle hit rate', 'attention recall'] } },
    spec: {
      // one step per bar (the offset band), so a panel grows with methods x budgets
      width: { step: 12 },
      height: 200,
      mark: { type: 'bar' },
      encoding: {
        x: { field: 'budget', type: 'ordinal', title: 'budget', sort: 'ascending' },
        xOffset: { field: 'method', type: 'nominal', sort: present },
        y: { field: 'value', type: 'quantitative', title: '%', scale: { domain: [0, 100] } },
        color: methodColor(methods, present),
        tooltip: [
          { field: 'method', type: 'nominal' },
          { field: 'budget', type: 'ordinal' },
          { field: 'measure', type: 'nominal' },
          { field: 'value', type: 'quantitative', format: '.1f' },
        ],
      },
    },
    config,
  };
}

/** Where each method keeps its entries along the prompt: share of (layer, head) slots kept per bin of positions. */
export function keptSpec(bins: KeptBin[], title: string, length: number): TopLevelSpec {
  const settings = [...new Set(bins.map((b) => b.setting))];
  return {
    $schema: SCHEMA,
    title,
    data: { values: bins.map((b) => ({ ...b, end1: b.end + 1 })) },
    width: 640,
    height: { step: 16 },
    mark: { type: 'rect' },
    encoding: {
      x: { field: 'start', type: 'quantitative', title: 'prompt position', scale: { domain: [0, length] } },
      x2: { field: 'end1' },
      y: { field: 'setting', type: 'nominal', title: null, sort: settings, axis: { labelLimit: 260 } },
      color: { field: 'share', type: 'quantitative', title: 'kept share', scale: { domain: [0, 1], scheme: 'blues' } },
      tooltip: [
        { field: 'setting', type: 'nominal' },
        { field: 'start', type: 'quantitative', title: 'from' },
        { field: 'end', type: 'quantitative', title: 'to' },
        { field: 'share', type: 'quantitative', format: '.2f' },
      ],
    },
    config,
  };
}
