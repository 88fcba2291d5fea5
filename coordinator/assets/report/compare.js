// The HTML comparison of two runs (`stampede compare --html`): the rows
// and verdicts `compare` computed, and both runs' percentile spectra,
// throughput and p99 over time overlaid. Uses report.js's helpers.
'use strict';

const SIDES = [
  ['base', '#1f77b4'],
  ['candidate', '#d62728'],
];

function compareValue(row, v) {
  if (v === null || v === undefined) return '-';
  if (row.figure === 'throughput') return `${rate(v)}/s`;
  if (row.figure === 'error_rate') return `${(v * 100).toFixed(3)}%`;
  return micros(v);
}

function verdictClass(verdict) {
  return verdict === 'worse' ? 'fail' : verdict === 'better' ? 'pass' : '';
}

function rowsTable(rows, id) {
  return table(
    ['series', 'figure', 'base', 'candidate', 'change', '99% interval', 'verdict'],
    rows.map((r) => {
      const series = r.node ? `node ${r.node}` : r.operation;
      const key = `${r.node ? `node.${r.node}` : r.operation}.${r.figure}`;
      return [
        series,
        r.figure,
        compareValue(r, r.base),
        compareValue(r, r.candidate),
        { text: r.change === null ? '-' : `${r.change >= 0 ? '+' : ''}${(r.change * 100).toFixed(1)}%`, figure: `change.${key}`, value: r.change },
        r.interval ? `[${(r.interval[0] * 100).toFixed(1)}%, ${(r.interval[1] * 100).toFixed(1)}%]` : '-',
        { text: r.verdict.replace(/_/g, ' '), class: verdictClass(r.verdict), figure: `verdict.${key}`, value: JSON.stringify(r.verdict) },
      ];
    }),
    { id },
  );
}

async function histogramsOf(report) {
  const out = {};
  for (const [name, h] of Object.entries((report.histograms || {}).operations || {})) out[name] = await Hdr.decode(h.latency);
  return out;
}

async function compareMain() {
  const data = JSON.parse(document.getElementById('compare-data').textContent);
  const { base, candidate, comparison } = data;
  document.title = `Stampede compare: ${base.run_id} and ${candidate.run_id}`;
  const root = document.getElementById('report');
  root.replaceChildren();
  const worse = comparison.rows.filter((r) => r.verdict === 'worse');
  const better = comparison.rows.filter((r) => r.verdict === 'better');
  const summary = worse.length > 0 ? 'failed' : 'passed';
  root.append(
    el(
      'header',
      {},
      el('h1', {}, `Stampede compare: ${candidate.scenario.name}`),
      el('div', { class: `verdict ${summary}`, id: 'verdict', 'data-worse': worse.length }, el('span', { class: 'status' }, worse.length > 0 ? `${worse.length} WORSE` : 'NOTHING WORSE'), ` · ${better.length} better`),
      el('p', { class: 'headline' }, `base ${base.run_id} (${base.status}, ${base.duration_s.toFixed(0)} s) against candidate ${candidate.run_id} (${candidate.status}, ${candidate.duration_s.toFixed(0)} s)`),
      el('p', { class: 'hint' }, `Method: ${comparison.method}.`),
    ),
  );
  const opRows = comparison.rows.filter((r) => !r.node);
  const nodeRows = comparison.rows.filter((r) => r.node);
  root.append(section('rows', 'Per operation', rowsTable(opRows, 'compare-table')));
  if (nodeRows.length > 0) root.append(section('node-rows', 'Per backend node (its requests of every operation)', rowsTable(nodeRows, 'compare-nodes-table')));

  const sides = [await histogramsOf(base), await histogramsOf(candidate)];
  const names = [...new Set(Object.keys(sides[0]).concat(Object.keys(sides[1])))].sort();
  const spectra = section('spectrum', 'Percentile spectra, both runs');
  const over = section('time', 'Over time, both runs (seconds since each run\u2019s start)');
  root.append(spectra, over);
  names.forEach((name, i) => {
    const box = chartBox(`chart-spectrum-${i}`, `${name}: latency by percentile`);
    spectra.append(box);
    // One x axis for both: the larger run's spectrum points.
    const points = sides.map((h) => (h[name] ? Hdr.spectrum(h[name]) : [[], []]));
    const xs = points[0][0].length >= points[1][0].length ? points[0][0] : points[1][0];
    const data = [xs].concat(
      sides.map((h) => xs.map((x) => (h[name] && x <= h[name].total * 1.0001 ? Hdr.quantile(h[name], x >= h[name].total ? 1 : 1 - 1 / x) || null : null))),
    );
    charts[`spectrum:${name}`] = new uPlot(
      {
        width: width(box),
        height: 300,
        scales: { x: { time: false, distr: 3 }, y: { distr: 3 } },
        series: [{ label: '1/(1-p)' }].concat(SIDES.map(([label, stroke]) => ({ label, stroke, width: 2, value: (u, v) => micros(v) }))),
        axes: [
          { label: '1/(1-percentile)', values: (u, values) => values.map((v) => (v === null ? '' : v >= 1e3 ? `${v / 1e3}k` : `${v}`)) },
          { label: 'latency', size: 70, values: (u, values) => values.map(micros) },
        ],
        cursor: { drag: { x: false, y: false } },
      },
      data,
      box,
    );
  });
  const decoded = [await decodeWindows(base.windows || []), await decodeWindows(candidate.windows || [])];
  const reports = [base, candidate];
  // Seconds since each run's first measured window.
  const offsets = reports.map((r) => (r.windows.length > 0 ? r.windows[0].start_s : 0));
  const seconds = [...new Set(reports.flatMap((r, k) => r.windows.map((w) => w.start_s - offsets[k])))].sort((a, b) => a - b);
  const at = (k, fn) =>
    seconds.map((t) => {
      const i = reports[k].windows.findIndex((w) => w.start_s - offsets[k] === t);
      return i < 0 ? null : fn(reports[k].windows[i], decoded[k][i]);
    });
  names.forEach((name, i) => {
    const throughputBox = chartBox(`chart-throughput-${i}`, `${name}: throughput (ops/s)`);
    const p99Box = chartBox(`chart-p99-${i}`, `${name}: p99 per window`);
    over.append(throughputBox, p99Box);
    const labels = SIDES.map(([label]) => label);
    const colors = SIDES.map(([, color]) => color);
    timeChart(throughputBox, `throughput:${name}`, labels, [seconds].concat([0, 1].map((k) => at(k, (w) => (w.operations[name] ? w.operations[name].count / w.length_s : null)))), { colors, unit: 'ops/s' });
    timeChart(
      p99Box,
      `p99:${name}`,
      labels,
      [seconds].concat([0, 1].map((k) => at(k, (w, d) => (d.ops[name] && d.ops[name].latency.total > 0 ? Hdr.quantile(d.ops[name].latency, 0.99) : null)))),
      { colors, log: true, format: micros, unit: 'p99' },
    );
  });
}

if (document.getElementById('compare-data')) start(compareMain);
