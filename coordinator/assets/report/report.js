// The HTML report: everything is drawn from the JSON report embedded in the
// page (no request leaves it). Charts are uPlot; histograms are read with
// hdr.js, so that a time window dragged on any chart gets its exact merged
// percentiles.
'use strict';

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];
const PERCENTILES = [
  ['p50', 'p50'],
  ['p90', 'p90'],
  ['p99', 'p99'],
  ['p999', 'p99.9'],
  ['max', 'max'],
];
const SUMMARY_COLUMNS = [
  ['min', 'min'],
  ['mean', 'mean'],
  ['p50', 'p50'],
  ['p90', 'p90'],
  ['p95', 'p95'],
  ['p99', 'p99'],
  ['p999', 'p99.9'],
  ['p9999', 'p99.99'],
  ['max', 'max'],
];

function micros(us) {
  if (us === null || us === undefined || Number.isNaN(us)) return '';
  if (us < 1000) return `${us.toFixed(0)}us`;
  if (us < 1e6) return `${(us / 1000).toFixed(2)}ms`;
  return `${(us / 1e6).toFixed(2)}s`;
}

function rate(n) {
  if (n === null || n === undefined) return '';
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(n >= 100 ? 0 : 1);
}

function mebibytes(bytes) {
  return bytes === null || bytes === undefined ? '-' : `${(bytes / 1048576).toFixed(0)} MiB`;
}

function percent(x) {
  return x === null || x === undefined ? '-' : `${(x * 100).toFixed(1)}%`;
}

// An element with attributes and children (strings become text).
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (key === 'class') node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function section(id, title, ...children) {
  return el('section', { id }, el('h2', {}, title), ...children);
}

// A table; a cell is a string or {text, figure, value, class}.
function table(headers, rows, attrs) {
  const head = el('tr', {}, headers.map((h) => el('th', {}, h)));
  const body = rows.map((row) =>
    el(
      'tr',
      {},
      row.map((cell) =>
        cell !== null && typeof cell === 'object' && !(cell instanceof Node)
          ? el('td', { 'data-figure': cell.figure, 'data-value': cell.value, class: cell.class }, cell.text)
          : el('td', {}, cell),
      ),
    ),
  );
  return el('table', attrs || {}, el('thead', {}, head), el('tbody', {}, body));
}

function chartBox(id, caption) {
  return el('figure', { class: 'chart', id }, el('figcaption', {}, caption));
}

const charts = {};

function width(box) {
  return Math.max(360, Math.min(1100, (box.parentElement || document.body).clientWidth - 8));
}

// A chart over the run's time axis; the cursor and selection are shared.
function timeChart(box, name, seriesLabels, data, options) {
  const opts = options || {};
  const series = [{ label: 'second' }].concat(
    seriesLabels.map((label, i) => ({
      label,
      stroke: (opts.colors || COLORS)[i % COLORS.length],
      width: 1.5,
      dash: opts.dashes ? opts.dashes[i] : undefined,
      value: (u, v) => (v === null || v === undefined ? '-' : opts.format ? opts.format(v) : rate(v)),
      points: { show: data[0].length < 3 },
    })),
  );
  const chart = new uPlot(
    {
      width: width(box),
      height: 260,
      scales: { x: { time: false }, y: opts.log ? { distr: 3 } : { range: opts.range } },
      series,
      axes: [
        { label: 'seconds since the start', incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400] },
        { label: opts.unit || '', size: 70, values: (u, values) => values.map((v) => (opts.format ? opts.format(v) : rate(v))) },
      ],
      cursor: { sync: { key: 'time' }, drag: { x: true, y: false, setScale: false } },
      hooks: { setSelect: [(u) => selected(u)] },
    },
    data,
    box,
  );
  charts[name] = chart;
  return chart;
}

// Decoded histograms of every window: ops[name] = {latency, service},
// nodes[name] = latency.
async function decodeWindows(windows) {
  return Promise.all(
    windows.map(async (w) => {
      const ops = {};
      for (const [name, op] of Object.entries(w.operations)) {
        ops[name] = { latency: await Hdr.decode(op.latency), service: await Hdr.decode(op.service) };
      }
      const nodes = {};
      for (const [name, node] of Object.entries(w.nodes || {})) nodes[name] = await Hdr.decode(node.latency);
      return { ops, nodes };
    }),
  );
}

let state = null;

function header(report) {
  const status = report.status;
  const verdict = el(
    'div',
    { class: `verdict ${status}`, id: 'verdict', 'data-status': status },
    el('span', { class: 'status' }, status.toUpperCase()),
    el('span', {}, ` ${report.scenario.name} · run ${report.run_id}`),
  );
  const parts = [el('h1', {}, `Stampede report: ${report.scenario.name}`), verdict];
  if (report.error) parts.push(el('p', { class: 'error' }, report.error));
  const totals = report.totals;
  parts.push(
    el(
      'p',
      { class: 'headline' },
      `${totals.ops.toLocaleString('en')} operations in ${report.duration_s.toFixed(1)} s measured `,
      `(after ${report.warmup_s.toFixed(1)} s warm-up), ${rate(totals.throughput)} ops/s, `,
      `${totals.errors.toLocaleString('en')} errors, ${report.agents.length} agent(s)`,
    ),
  );
  if (report.thresholds.length > 0) {
    parts.push(
      table(
        ['threshold', 'observed', 'result'],
        report.thresholds.map((t, i) => [
          t.expr,
          { text: t.observed === null ? 'nothing measured' : t.unit === 'us' ? micros(t.observed) : t.unit === 'ratio' ? percent(t.observed) : `${+t.observed.toFixed(3)} ${t.unit}`, figure: `threshold.${i}.observed`, value: t.observed },
          { text: t.passed ? 'passed' : 'FAILED', class: t.passed ? 'pass' : 'fail', figure: `threshold.${i}.passed`, value: t.passed },
        ]),
        { id: 'thresholds' },
      ),
    );
  } else {
    parts.push(el('p', {}, 'No thresholds were set.'));
  }
  if (report.notes.length > 0) parts.push(el('ul', { class: 'notes' }, report.notes.map((n) => el('li', {}, n))));
  return el('header', {}, parts);
}

// Rows of the operations table for `figures`: name -> {count, errors,
// latency, service} over `seconds`.
function operationRows(figures, seconds, prefix, openModel) {
  const rows = [];
  for (const [name, f] of Object.entries(figures)) {
    const kinds = openModel ? [['latency', f.latency], ['service time', f.service]] : [['latency', f.latency]];
    kinds.forEach(([kind, summary], k) => {
      const key = `${prefix}.${name}.${k === 0 ? 'latency' : 'service'}`;
      const first = k === 0;
      rows.push(
        [
          first ? name : '',
          kind,
          first ? { text: f.count.toLocaleString('en'), figure: `${prefix}.${name}.count`, value: f.count } : '',
          first ? { text: rate(seconds > 0 ? f.count / seconds : 0), figure: `${prefix}.${name}.throughput`, value: seconds > 0 ? f.count / seconds : 0 } : '',
          first ? { text: f.errors.toLocaleString('en'), figure: `${prefix}.${name}.errors`, value: f.errors } : '',
        ].concat(SUMMARY_COLUMNS.map(([field]) => ({ text: micros(summary[field]), figure: `${key}.${field}`, value: summary[field] }))),
      );
    });
  }
  return rows;
}

const OPERATION_HEADERS = ['operation', '', 'count', 'ops/s', 'errors'].concat(SUMMARY_COLUMNS.map(([, label]) => label));

function operationsSection(report) {
  const figures = {};
  for (const [name, op] of Object.entries(report.operations)) {
    figures[name] = { count: op.count, errors: op.errors, latency: op.latency_us, service: op.service_time_us };
  }
  const open = report.scenario.load_model === 'open';
  const parts = [];
  if (Object.keys(figures).length === 0) {
    parts.push(el('p', {}, 'The run measured nothing.'));
  } else {
    parts.push(table(OPERATION_HEADERS, operationRows(figures, report.duration_s, 'op', open), { id: 'operations-table' }));
    if (open) {
      parts.push(
        el('p', { class: 'hint' }, 'Latency counts from each request\u2019s intended start (open model); service time from when it was sent.'),
      );
    }
  }
  const errorRows = [];
  for (const [name, op] of Object.entries(report.operations)) {
    for (const [kind, n] of Object.entries(op.errors_by_kind)) errorRows.push([name, kind, { text: n.toLocaleString('en'), figure: `errors.${name}.${kind}`, value: n }]);
  }
  if (errorRows.length > 0) {
    parts.push(el('h3', {}, 'Errors by kind'), table(['operation', 'kind', 'count'], errorRows, { id: 'errors-table' }));
  }
  const total = report.totals.transfer;
  if (total && total.bytes_sent + total.bytes_received > 0) {
    const cell = (name, t, field, digits) => ({ text: t[field].toFixed(digits), figure: `transfer.${name}.${field}`, value: t[field] });
    const rows = Object.entries(report.operations)
      .map(([name, op]) => [name, op.transfer])
      .concat([['total', total]])
      .map(([name, t]) => [name, cell(name, t, 'sent_per_op', 1), cell(name, t, 'received_per_op', 1), cell(name, t, 'sent_mb_per_s', 3), cell(name, t, 'received_mb_per_s', 3)]);
    parts.push(
      el('h3', {}, 'Bytes on the wire'),
      table(['operation', 'sent B/op', 'received B/op', 'sent MB/s', 'received MB/s'], rows, { id: 'transfer-table' }),
      el('p', { class: 'hint' }, 'Of the operations that succeeded, as each driver counts them (the README\u2019s "Bytes on the wire"); MB is 10^6 bytes.'),
    );
  }
  const timings = Object.entries(report.timings || {});
  if (timings.length > 0) {
    const fields = [['mean', 'mean'], ['p50', 'p50'], ['p99', 'p99'], ['p999', 'p99.9'], ['max', 'max']];
    const rows = timings.map(([name, t]) =>
      [name, { text: t.count.toLocaleString('en'), figure: `codec.${name}.count`, value: t.count }].concat(
        fields.map(([field]) => ({ text: `${t.ns[field].toFixed(0)} ns`, figure: `codec.${name}.${field}`, value: t.ns[field] })),
      ),
    );
    parts.push(
      el('h3', {}, 'Codec (codec_in_path)'),
      table(['step', 'count'].concat(fields.map(([, label]) => label)), rows, { id: 'codec-table' }),
      el('p', { class: 'hint' }, 'Nanoseconds per value to encode it before a write and decode it after a read, inside the operations\u2019 latency above.'),
    );
  }
  return section('operations', 'Operations', parts);
}

function timeSection(report, decoded) {
  const windows = report.windows;
  const box = section('time', 'Over time');
  if (windows.length === 0) {
    box.append(el('p', {}, 'No time windows were kept (nothing measured, or an older report).'));
    return { box, draw: () => {} };
  }
  const length = windows[0].length_s;
  box.append(
    el(
      'p',
      { class: 'hint' },
      `${windows.length} windows of ${length} s. Drag over any chart to see the exact percentiles of that span below.`,
    ),
  );
  const names = Object.keys(report.operations);
  const throughputBox = chartBox('chart-throughput', 'Throughput per operation (ops/s)');
  const errorsBox = chartBox('chart-errors', 'Errors per second per operation');
  box.append(throughputBox, errorsBox);
  const latencyBoxes = names.map((name, i) => {
    const b = chartBox(`chart-latency-${i}`, `${name}: latency percentiles per window`);
    box.append(b);
    return b;
  });
  box.append(el('div', { id: 'selection' }));
  const draw = () => {
    const xs = windows.map((w) => w.start_s);
    const per = (name, field) => windows.map((w) => (w.operations[name] ? w.operations[name][field] / w.length_s : 0));
    timeChart(throughputBox, 'throughput', names, [xs].concat(names.map((n) => per(n, 'count'))), { unit: 'ops/s' });
    timeChart(errorsBox, 'errors', names, [xs].concat(names.map((n) => per(n, 'errors'))), { unit: 'errors/s' });
    names.forEach((name, i) => {
      const summaries = decoded.map((d) => (d.ops[name] ? Hdr.summary(d.ops[name].latency) : null));
      const lines = PERCENTILES.map(([field]) => summaries.map((s) => (s && s.count > 0 ? s[field] : null)));
      timeChart(latencyBoxes[i], `latency:${name}`, PERCENTILES.map(([, label]) => label), [xs].concat(lines), {
        log: true,
        format: micros,
        unit: 'latency',
      });
    });
  };
  return { box, draw };
}

function spectrumSection(report, histograms) {
  const box = section('spectrum', 'Percentile spectrum');
  const names = Object.keys(histograms);
  if (names.length === 0) {
    box.append(el('p', {}, 'The report keeps no histograms (nothing measured, or an older report).'));
    return { box, draw: () => {} };
  }
  const open = report.scenario.load_model === 'open';
  box.append(
    el(
      'p',
      { class: 'hint' },
      open
        ? 'Latency at each percentile, on a 1/(1-p) axis (10 = p90, 100 = p99, 1000 = p99.9). Latency counts from the intended start, service time from the send: the gap between the two lines is coordinated omission made visible.'
        : 'Latency at each percentile, on a 1/(1-p) axis (10 = p90, 100 = p99, 1000 = p99.9).',
    ),
  );
  const boxes = names.map((name, i) => {
    const b = chartBox(`chart-spectrum-${i}`, `${name}: latency by percentile`);
    box.append(b);
    return b;
  });
  const draw = () => {
    names.forEach((name, i) => {
      const [xs, latency] = Hdr.spectrum(histograms[name].latency);
      const series = [{ label: '1/(1-p)', value: (u, v) => (v === null ? '-' : `p${(100 * (1 - 1 / v)).toPrecision(6)}`) }, { label: 'latency', stroke: COLORS[0], width: 2, value: (u, v) => micros(v) }];
      const data = [xs, latency];
      if (open) {
        const service = xs.map((x) => Hdr.quantile(histograms[name].service, x >= histograms[name].service.total ? 1 : 1 - 1 / x));
        series.push({ label: 'service time', stroke: COLORS[1], width: 2, value: (u, v) => micros(v) });
        data.push(service);
      }
      charts[`spectrum:${name}`] = new uPlot(
        {
          width: width(boxes[i]),
          height: 300,
          scales: { x: { time: false, distr: 3 }, y: { distr: 3 } },
          series,
          axes: [
            { label: '1/(1-percentile)', values: (u, values) => values.map((v) => (v === null ? '' : v >= 1e6 ? `${v / 1e6}M` : v >= 1e3 ? `${v / 1e3}k` : `${v}`)) },
            { label: 'latency', size: 70, values: (u, values) => values.map(micros) },
          ],
          cursor: { drag: { x: false, y: false } },
        },
        data.map((column) => column.map((v) => (v > 0 ? v : null))),
        boxes[i],
      );
    });
  };
  return { box, draw };
}

function nodesSection(report, decoded) {
  const box = section('nodes', 'Backend nodes');
  const nodes = Object.keys(report.nodes);
  if (nodes.length === 0) {
    box.append(el('p', {}, 'No backend node was identified.'));
    return { box, draw: () => {} };
  }
  const dist = report.distribution;
  if (dist) {
    box.append(
      el(
        'p',
        { class: `verdict-line ${dist.verdict === 'balanced' ? 'pass' : dist.verdict === 'unbalanced' ? 'fail' : ''}`, id: 'distribution-verdict' },
        `Distribution: ${dist.verdict} (expected ${dist.expected}, tolerance ${dist.tolerance_pp} percentage points`,
        dist.requests.p_value === null ? ')' : `, chi-square p = ${dist.requests.p_value.toPrecision(3)})`,
      ),
    );
    if (dist.sampling) {
      const s = dist.sampling;
      const parts = Object.keys(s.nodes).map((n) => `${n} ${percent(s.nodes[n].share)} [${percent(s.nodes[n].low)}, ${percent(s.nodes[n].high)}]`);
      box.append(el('p', { class: 'hint', id: 'distribution-sampling' }, `Shares are sampled: ${s.samples.toLocaleString('en')} samples of the node, ${Math.round(s.confidence * 100)}% confidence intervals: ${parts.join('; ')}.`));
    }
    if (dist.findings.length > 0) box.append(el('ul', { class: 'findings' }, dist.findings.map((f) => el('li', {}, `${f.kind}: ${f.message}`))));
  }
  const rows = nodes.map((n) => {
    const node = report.nodes[n];
    const share = dist && dist.requests.nodes[n];
    const conn = dist && dist.connections.nodes[n];
    return [
      n,
      { text: node.ops.toLocaleString('en'), figure: `node.${n}.ops`, value: node.ops },
      share ? percent(share.share) : '-',
      share ? percent(share.expected_share) : '-',
      share ? `${share.deviation_pp >= 0 ? '+' : ''}${share.deviation_pp.toFixed(1)} pp` : '-',
      node.errors.toLocaleString('en'),
      conn ? `${node.connections} (${percent(conn.share)})` : String(node.connections),
    ];
  });
  box.append(table(['node', 'requests', 'share', 'expected', 'deviation', 'errors', 'connections'], rows, { id: 'nodes-table' }));
  if (dist && Object.keys(dist.agents).length > 0) {
    const agents = Object.keys(dist.agents);
    const matrix = agents.map((a) => {
      const total = Object.values(dist.agents[a]).reduce((x, y) => x + y, 0);
      return [a].concat(nodes.map((n) => {
        const c = dist.agents[a][n] || 0;
        return { text: `${c.toLocaleString('en')} (${percent(total > 0 ? c / total : 0)})`, figure: `matrix.${a}.${n}`, value: c };
      }));
    });
    box.append(el('h3', {}, 'Agent x node requests'), table(['agent'].concat(nodes), matrix, { id: 'matrix-table' }));
    if (dist.affinity !== null) box.append(el('p', { class: 'hint' }, `Cramér's V of the matrix: ${dist.affinity.toFixed(3)} (0: every agent spreads like the total; 1: each agent reaches one node).`));
  }
  const sharesBox = chartBox('chart-node-shares', 'Share of requests per node per window (dashed: expected)');
  const latencyBox = chartBox('chart-node-latency', 'Latency per node per window (solid p99, dashed p50)');
  if (report.windows.length > 0) box.append(sharesBox, latencyBox);
  const draw = () => {
    if (report.windows.length === 0) return;
    const xs = report.windows.map((w) => w.start_s);
    const labels = [];
    const lines = [];
    const colors = [];
    const dashes = [];
    nodes.forEach((n, i) => {
      labels.push(n);
      colors.push(COLORS[i % COLORS.length]);
      dashes.push(undefined);
      lines.push(
        report.windows.map((w) => {
          const total = Object.values(w.nodes || {}).reduce((x, v) => x + v.count, 0);
          return total > 0 ? ((w.nodes[n] ? w.nodes[n].count : 0) / total) * 100 : null;
        }),
      );
    });
    if (dist) {
      nodes.forEach((n, i) => {
        const share = dist.requests.nodes[n];
        if (!share) return;
        labels.push(`${n} expected`);
        colors.push(COLORS[i % COLORS.length]);
        dashes.push([6, 4]);
        lines.push(xs.map(() => share.expected_share * 100));
      });
    }
    timeChart(sharesBox, 'node-shares', labels, [xs].concat(lines), { colors, dashes, unit: '% of requests', range: [0, 100], format: (v) => (v === null ? '' : `${v.toFixed(1)}%`) });
    const latLabels = [];
    const latLines = [];
    const latColors = [];
    const latDashes = [];
    nodes.forEach((n, i) => {
      const summaries = decoded.map((d) => (d.nodes[n] ? Hdr.summary(d.nodes[n]) : null));
      for (const [field, dash] of [['p99', undefined], ['p50', [6, 4]]]) {
        latLabels.push(`${n} ${field}`);
        latColors.push(COLORS[i % COLORS.length]);
        latDashes.push(dash);
        latLines.push(summaries.map((s) => (s && s.count > 0 ? s[field] : null)));
      }
    });
    timeChart(latencyBox, 'node-latency', latLabels, [xs].concat(latLines), { colors: latColors, dashes: latDashes, log: true, format: micros, unit: 'latency' });
  };
  return { box, draw };
}

function agentsSection(report) {
  const rows = report.agents.map((a) => {
    const g = a.generator || {};
    return [
      a.id,
      a.host,
      { text: a.ops.toLocaleString('en'), figure: `agent.${a.id}.ops`, value: a.ops },
      a.errors.toLocaleString('en'),
      a.planned_rate === null || a.planned_rate === undefined ? '-' : `${rate(a.planned_rate)}/s`,
      `${rate(a.achieved_rate)}/s`,
      { text: a.late_starts.toLocaleString('en'), figure: `agent.${a.id}.late_starts`, value: a.late_starts },
      g.cpu_percent_mean === undefined ? '-' : `${g.cpu_percent_mean.toFixed(0)}% (max ${g.cpu_percent_max.toFixed(0)}%)`,
      g.rss_bytes_max ? `${mebibytes(g.rss_bytes_mean)} (max ${mebibytes(g.rss_bytes_max)})` : '-',
      g.saturated_intervals ? `${g.saturated_intervals} s` : '-',
      `${a.clock_offset_us} us (rtt ${a.clock_rtt_us} us)`,
      `${a.intervals}${a.reports_dropped ? ` (${a.reports_dropped} dropped)` : ''}`,
    ];
  });
  const parts = [
    table(['agent', 'host', 'ops', 'errors', 'planned', 'achieved', 'late starts', 'CPU', 'memory', 'saturated', 'clock offset', 'intervals'], rows, { id: 'agents-table' }),
  ];
  if (report.totals.generator_saturated > 0) {
    parts.push(el('p', { class: 'fail' }, `The load generator was saturated on ${report.totals.generator_saturated} agent(s): figures may show the generator's limit, not the target's.`));
  }
  for (const loss of report.agent_losses) {
    parts.push(el('p', { class: 'fail' }, `Agent ${loss.agent} was lost at ${loss.lost_at_s.toFixed(1)} s${loss.back_at_s === null ? '' : ` and back at ${loss.back_at_s.toFixed(1)} s`}; about ${loss.shortfall_ops} operations (${percent(loss.shortfall_share)}) were not done.`));
  }
  return section('agents', 'Agents', parts);
}

function scenarioSection(report) {
  const started = new Date(report.started_at_unix_ms);
  const s = report.scenario;
  const meta = [
    ['run', report.run_id],
    ['scenario', s.name],
    ['status', report.status],
    ['started', report.started_at_unix_ms > 0 ? started.toISOString() : '-'],
    ['measured', `${report.duration_s.toFixed(1)} s after ${report.warmup_s.toFixed(1)} s warm-up`],
    ['target', `${s.target.kind} ${s.target.endpoints.join(', ')}`],
    ['workload', s.workload],
    ['load', `${s.load_model}, ${s.connections} connection(s), pipeline ${s.pipeline}${s.rate ? `, ${s.rate}/s` : ''}`],
    ['report schema', report.schema],
  ];
  const parts = [table(['', ''], meta, { id: 'meta-table' })];
  if (report.scenario_yaml) parts.push(el('h3', {}, 'The scenario as run (passwords hidden)'), el('pre', { id: 'scenario-yaml' }, report.scenario_yaml));
  return section('scenario', 'Scenario and run', parts);
}

// Windows whose start lies within [from, to] (seconds), and their figures.
function windowFigures(report, decoded, first, last) {
  const figures = {};
  let seconds = 0;
  for (let i = first; i <= last; i++) seconds += report.windows[i].length_s;
  for (const name of Object.keys(report.operations)) {
    const picked = [];
    let count = 0;
    let errors = 0;
    for (let i = first; i <= last; i++) {
      const op = report.windows[i].operations[name];
      if (!op) continue;
      count += op.count;
      errors += op.errors;
      picked.push(decoded[i].ops[name]);
    }
    figures[name] = {
      count,
      errors,
      latency: Hdr.summary(Hdr.merge(picked.map((p) => p.latency))),
      service: Hdr.summary(Hdr.merge(picked.map((p) => p.service))),
    };
  }
  return { figures, seconds };
}

function showSelection(from, to) {
  const { report, decoded } = state;
  const box = document.getElementById('selection');
  box.replaceChildren();
  const indexes = report.windows.map((w, i) => i).filter((i) => report.windows[i].start_s >= from && report.windows[i].start_s <= to);
  if (indexes.length === 0) {
    state.selection = null;
    return;
  }
  const first = indexes[0];
  const last = indexes[indexes.length - 1];
  const start = report.windows[first].start_s;
  const end = report.windows[last].start_s + report.windows[last].length_s;
  const { figures, seconds } = windowFigures(report, decoded, first, last);
  state.selection = { from: start, to: end, figures };
  box.append(
    el('h3', {}, `Selected: ${start} s to ${end} s (${indexes.length} window${indexes.length === 1 ? '' : 's'})`),
    table(OPERATION_HEADERS, operationRows(figures, seconds, 'window', report.scenario.load_model === 'open'), { id: 'selection-table', 'data-from': start, 'data-to': end }),
    el('p', { class: 'hint' }, `Exact: the windows' histograms merged. The same figures in a terminal: stampede report ${report.run_id} --window ${start}..${end}`),
    el('button', { type: 'button', id: 'clear-selection' }, 'Clear the selection'),
  );
  document.getElementById('clear-selection').addEventListener('click', () => {
    box.replaceChildren();
    state.selection = null;
    for (const chart of Object.values(charts)) if (chart.select.width > 0) chart.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
  });
}

function selected(u) {
  if (u.select.width <= 0 || !state) return;
  const from = Math.ceil(u.posToVal(u.select.left, 'x'));
  const to = Math.floor(u.posToVal(u.select.left + u.select.width, 'x'));
  showSelection(from, to);
}

async function main() {
  const report = JSON.parse(document.getElementById('report-data').textContent);
  document.title = `Stampede ${report.status}: ${report.scenario.name} (${report.run_id})`;
  const decoded = await decodeWindows(report.windows || []);
  const histograms = {};
  if (report.histograms) {
    for (const [name, h] of Object.entries(report.histograms.operations)) {
      histograms[name] = { latency: await Hdr.decode(h.latency), service: await Hdr.decode(h.service) };
    }
  }
  state = { report, decoded, selection: null };
  const root = document.getElementById('report');
  root.replaceChildren();
  root.append(header(report), operationsSection(report));
  const parts = [timeSection(report, decoded), spectrumSection(report, histograms), nodesSection(report, decoded)];
  for (const part of parts) root.append(part.box);
  root.append(agentsSection(report), scenarioSection(report));
  for (const part of parts) part.draw();
}

// The page is a report, or (compare.js) a comparison of two.
function start(draw) {
  window.stampedeReport = { charts, ready: false, error: null, show: (from, to) => showSelection(from, to), state: () => state };
  draw().then(
    () => {
      window.stampedeReport.ready = true;
      document.body.setAttribute('data-ready', 'true');
    },
    (error) => {
      window.stampedeReport.error = String(error);
      document.getElementById('report').prepend(el('p', { class: 'fail' }, `The page could not be drawn: ${error}`));
      throw error;
    },
  );
}

if (document.getElementById('report-data')) start(main);
