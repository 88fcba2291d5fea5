// The coordinator's live dashboard. Everything arrives over one
// EventSource (/events, ?run=ID to follow a run): `runs` and `agents` when
// they change, and for the followed run `windows` (the run's history at
// once, then the windows that changed each second) and `status` (the run
// so far), then `end`. The helpers (el, table, micros, rate, COLORS) are
// report.js's, inlined before this file.
'use strict';

const live = {
  runs: [],
  agents: [],
  run: null, // followed run id
  windows: new Map(), // start_s -> window
  status: null,
  end: null,
  events: 0,
  connected: false,
  charts: {},
  source: null,
};
window.stampedeDashboard = live;

function byId(id) {
  return document.getElementById(id);
}

function fill(id, ...children) {
  const node = byId(id);
  if (node) node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

function when(unixMs) {
  if (!unixMs) return '-';
  return new Date(unixMs).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
}

function seconds(s) {
  if (s === null || s === undefined) return '-';
  if (s < 120) return `${s.toFixed(0)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function verdictClass(state) {
  return { passed: 'pass', failed: 'fail', error: 'error', aborted: 'error' }[state] || '';
}

function figure(text, name, value) {
  return { text, figure: name, value };
}

function thresholdValue(t) {
  if (t.observed === null || t.observed === undefined) return 'no data';
  if (t.unit === 'us') return micros(t.observed);
  if (t.unit === 'ratio') return percent(t.observed);
  if (t.unit === 'ops/s') return `${rate(t.observed)}/s`;
  return String(Number.isInteger(t.observed) ? t.observed : t.observed.toFixed(3));
}

// ---------------------------------------------------------------- lists

function drawRuns() {
  const rows = live.runs.map((r) => {
    const link = el('a', { href: `?run=${encodeURIComponent(r.run_id)}`, 'data-run': r.run_id }, r.run_id);
    const f = r.figures || {};
    return [
      link,
      r.name,
      r.target,
      { text: r.state, class: verdictClass(r.state), figure: `run.${r.run_id}.state`, value: r.state },
      when(r.started_at_unix_ms || r.submitted_at_unix_s * 1000),
      f.duration_s === undefined ? '-' : seconds(f.duration_s),
      f.throughput === undefined ? '-' : `${rate(f.throughput)}/s`,
      f.p99_us === undefined || f.p99_us === null ? '-' : micros(f.p99_us),
      r.ended ? el('a', { href: `runs/${encodeURIComponent(r.run_id)}/report.html` }, 'report') : 'live',
    ];
  });
  fill(
    'runs',
    rows.length
      ? table(['run', 'scenario', 'target', 'state', 'started', 'measured', 'ops/s', 'p99', ''], rows, { id: 'runs-table' })
      : el('p', { class: 'hint' }, 'No runs yet: submit one with `stampede submit SCENARIO --coordinator URL`.'),
  );
}

function drawAgents() {
  const rows = live.agents.map((a) => [
    a.agent_id,
    a.host,
    { text: a.connected ? 'connected' : 'lost', class: a.connected ? 'pass' : 'fail' },
    a.busy_with || '-',
    Object.entries(a.labels || {}).map(([k, v]) => `${k}=${v}`).join(', ') || '-',
    `${a.clock_offset_us} us (rtt ${a.clock_rtt_us} us)`,
    `${a.cpu_percent.toFixed(0)}%`,
    mebibytes(a.rss_bytes),
  ]);
  fill(
    'agents',
    rows.length
      ? table(['agent', 'host', 'session', 'run', 'labels', 'clock offset', 'CPU', 'memory'], rows, { id: 'agents-list' })
      : el('p', { class: 'hint' }, 'No agent is connected: start one with `stampede agent --coordinator URL`.'),
  );
}

// ---------------------------------------------------------------- the run

function sortedWindows() {
  return [...live.windows.values()].sort((a, b) => a.start_s - b.start_s);
}

function operationNames(windows) {
  const names = new Set(Object.keys((live.status && live.status.operations) || {}));
  for (const w of windows) for (const name of Object.keys(w.operations)) names.add(name);
  return [...names].sort();
}

function nodeNames(windows) {
  const names = new Set(((live.status && live.status.nodes) || []).map((n) => n.name));
  for (const w of windows) for (const name of Object.keys(w.nodes)) names.add(name);
  return [...names].sort();
}

// A chart that is made once and then given new data.
function liveChart(id, caption, labels, data, opts) {
  const options = opts || {};
  let chart = live.charts[id];
  const key = labels.join('|');
  if (chart && chart.key === key) {
    chart.plot.setData(data);
    return;
  }
  const box = byId(id);
  if (!box) return;
  if (chart) chart.plot.destroy();
  box.replaceChildren(el('figcaption', {}, caption));
  const series = [{ label: 'second' }].concat(
    labels.map((label, i) => ({
      label,
      stroke: COLORS[i % COLORS.length],
      width: 1.5,
      dash: options.dashes ? options.dashes[i] : undefined,
      value: (u, v) => (v === null || v === undefined ? '-' : options.format ? options.format(v) : rate(v)),
    })),
  );
  const plot = new uPlot(
    {
      width: Math.max(360, Math.min(1100, box.parentElement.clientWidth - 8)),
      height: 220,
      scales: { x: { time: false }, y: options.log ? { distr: 3 } : { range: options.range } },
      series,
      axes: [
        { label: 'seconds since the start' },
        { label: options.unit || '', size: 70, values: (u, vs) => vs.map((v) => (options.format ? options.format(v) : rate(v))) },
      ],
      cursor: { sync: { key: 'live' } },
    },
    data,
    box,
  );
  live.charts[id] = { plot, key };
}

function drawCharts() {
  const windows = sortedWindows();
  const xs = windows.map((w) => w.start_s);
  const ops = operationNames(windows);
  liveChart(
    'chart-throughput',
    'Throughput per operation (ops/s)',
    ops,
    [xs].concat(ops.map((op) => windows.map((w) => (w.operations[op] ? w.operations[op].count / w.length_s : null)))),
    { unit: 'ops/s' },
  );
  liveChart(
    'chart-errors',
    'Errors per second per operation',
    ops,
    [xs].concat(ops.map((op) => windows.map((w) => (w.operations[op] ? w.operations[op].errors / w.length_s : null)))),
    { unit: 'errors/s' },
  );
  const lines = [];
  const labels = [];
  for (const op of ops.slice(0, 3)) {
    for (const [key, label] of [['p50', 'p50'], ['p99', 'p99'], ['p999', 'p99.9'], ['max', 'max']]) {
      labels.push(ops.length > 1 ? `${op} ${label}` : label);
      lines.push(windows.map((w) => (w.operations[op] && w.operations[op].count ? w.operations[op].latency_us[key] : null)));
    }
  }
  liveChart('chart-latency', 'Latency per window (from the merged histograms)', labels, [xs].concat(lines), {
    unit: 'latency',
    format: micros,
    log: true,
  });
  const nodes = nodeNames(windows);
  if (nodes.length) {
    const expected = {};
    for (const n of (live.status && live.status.nodes) || []) expected[n.name] = n.expected_share;
    const shareLines = nodes.map((node) =>
      windows.map((w) => {
        const total = Object.values(w.nodes).reduce((s, n) => s + n.count, 0);
        return total ? (w.nodes[node] ? w.nodes[node].count : 0) / total : null;
      }),
    );
    const expectedLines = nodes.map((node) => windows.map(() => (expected[node] === undefined || expected[node] === null ? null : expected[node])));
    liveChart(
      'chart-shares',
      'Share of requests per node (dashed: expected)',
      nodes.concat(nodes.map((n) => `${n} expected`)),
      [xs].concat(shareLines, expectedLines),
      { unit: 'share', format: percent, range: [0, 1], dashes: nodes.map(() => undefined).concat(nodes.map(() => [6, 4])) },
    );
  }
  byId('run').setAttribute('data-windows', String(windows.length));
}

function drawStatus() {
  const s = live.status;
  if (!s) return;
  const measured = Math.max(0, s.duration_s - s.warmup_s);
  const counted = s.operations_total > 0;
  const done = counted
    ? Math.min(1, s.operations_done / s.operations_total)
    : s.duration_s
      ? Math.min(1, s.elapsed_s / s.duration_s)
      : 0;
  const left = Math.max(0, s.duration_s - s.elapsed_s);
  const warming = s.elapsed_s < s.warmup_s ? ' (warm-up)' : '';
  // A count-limited run shows its operations; without `duration` its time
  // limit is a day at most, not a planned length.
  const progress = counted
    ? el(
        'span',
        { id: 'run-progress', 'data-done': String(s.operations_done), 'data-total': String(s.operations_total) },
        ` \u2014 ${Math.min(s.operations_done, s.operations_total)} of ${s.operations_total} operations (${(done * 100).toFixed(0)}%), ${s.elapsed_s} s${s.duration_given ? `, ${left} s left at most` : ''}${warming}`,
      )
    : el('span', { id: 'run-progress' }, ` \u2014 ${s.elapsed_s} of ${s.duration_s} s, ${left} s left${warming}`);
  const ended = live.end !== null;
  const state = ended ? live.end.state : s.state;
  fill(
    'run-head',
    el('h2', {}, `${s.name} `, el('span', { class: 'hint' }, s.run_id)),
    el(
      'p',
      { class: 'headline' },
      el('span', { class: `state ${verdictClass(state)}`, id: 'run-state' }, state),
      ended
        ? el('span', {}, ' \u2014 ', el('a', { href: live.end.report, id: 'report-link' }, 'the HTML report'), live.end.error ? ` \u2014 ${live.end.error}` : '')
        : progress,
    ),
    el('div', { class: 'gauge', title: `${(done * 100).toFixed(0)}%` }, el('div', { class: 'gauge-fill', style: `width:${(done * 100).toFixed(1)}%` })),
    table(
      ['current', 'average', 'ops', 'errors', 'late starts', 'measured', 'p50', 'p99', 'p99.9', 'max'],
      [
        [
          `${rate(s.current_rate)}/s`,
          figure(`${rate(s.average_rate)}/s`, 'total.average_rate', s.average_rate),
          figure(s.ops.toLocaleString('en'), 'total.ops', s.ops),
          figure(s.errors.toLocaleString('en'), 'total.errors', s.errors),
          figure(s.late_starts.toLocaleString('en'), 'total.late_starts', s.late_starts),
          counted && !s.duration_given ? `${s.measured_s.toFixed(0)} s` : `${s.measured_s.toFixed(0)} of ${measured} s`,
          micros(s.latency_us.p50),
          figure(micros(s.latency_us.p99), 'total.p99', s.latency_us.p99),
          micros(s.latency_us.p999),
          micros(s.latency_us.max),
        ],
      ],
      { id: 'totals-table' },
    ),
    s.message ? el('p', { class: 'fail' }, s.message) : null,
    s.generator_saturated > 0
      ? el('p', { class: 'fail' }, `The load generator was saturated in ${s.generator_saturated} agent-second(s): figures may show the generator's limit, not the target's.`)
      : null,
  );
  fill(
    'run-thresholds',
    s.thresholds.length
      ? table(
          ['threshold', 'so far', ''],
          s.thresholds.map((t, i) => [t.expr, figure(thresholdValue(t), `threshold.${i}.observed`, t.observed), { text: t.passed ? 'passing' : 'failing', class: t.passed ? 'pass' : 'fail', figure: `threshold.${i}.passed`, value: t.passed }]),
          { id: 'thresholds-table' },
        )
      : el('p', { class: 'hint' }, 'The scenario sets no thresholds.'),
  );
  const opRows = Object.entries(s.operations).map(([name, op]) => [
    name,
    figure(op.count.toLocaleString('en'), `op.${name}.count`, op.count),
    `${rate(op.throughput)}/s`,
    figure(op.errors.toLocaleString('en'), `op.${name}.errors`, op.errors),
    Object.entries(op.errors_by_kind).map(([k, n]) => `${k} ${n}`).join(', ') || '-',
    micros(op.latency_us.p50),
    micros(op.latency_us.p90),
    figure(micros(op.latency_us.p99), `op.${name}.p99`, op.latency_us.p99),
    micros(op.latency_us.p999),
    micros(op.latency_us.max),
  ]);
  fill('run-operations', table(['operation', 'count', 'ops/s', 'errors', 'errors by kind', 'p50', 'p90', 'p99', 'p99.9', 'max'], opRows, { id: 'operations-table' }));
  const nodeRows = s.nodes.map((n) => [
    n.name,
    figure(n.count.toLocaleString('en'), `node.${n.name}.count`, n.count),
    el('span', {}, el('span', { class: 'bar' }, el('span', { class: 'bar-fill', style: `width:${(n.share * 100).toFixed(1)}%` })), ` ${percent(n.share)}`),
    n.expected_share === null || n.expected_share === undefined ? '-' : percent(n.expected_share),
    n.errors.toLocaleString('en'),
  ]);
  fill('run-nodes', nodeRows.length ? table(['node', 'requests', 'share', 'expected', 'errors'], nodeRows, { id: 'nodes-table' }) : el('p', { class: 'hint' }, 'No node has served a measured request yet.'));
  const agentRows = s.agents.map((a) => [
    a.id,
    a.host,
    a.planned_rate === null || a.planned_rate === undefined ? '-' : `${rate(a.planned_rate)}/s`,
    `${rate(a.achieved_rate)}/s`,
    `${rate(a.current_rate)}/s`,
    figure(a.ops.toLocaleString('en'), `agent.${a.id}.ops`, a.ops),
    a.late_starts.toLocaleString('en'),
    micros(a.schedule_lag_us),
    `${a.cpu_percent.toFixed(0)}%`,
    mebibytes(a.rss_bytes),
    a.saturated_intervals ? { text: `${a.saturated_intervals} s`, class: 'fail' } : '-',
  ]);
  fill('run-agents', table(['agent', 'host', 'planned', 'achieved', 'current', 'ops', 'late starts', 'schedule lag', 'CPU', 'memory', 'saturated'], agentRows, { id: 'run-agents-table' }));
}

function drawEnded() {
  if (live.status) return;
  const e = live.end;
  fill(
    'run-head',
    el('h2', {}, e.run_id),
    el('p', { class: 'headline' }, el('span', { class: `state ${verdictClass(e.state)}`, id: 'run-state' }, e.state), ' \u2014 ', el('a', { href: e.report, id: 'report-link' }, 'the HTML report'), e.error ? ` \u2014 ${e.error}` : ''),
  );
}

// ---------------------------------------------------------------- feed

function follow(runId) {
  if (live.source) live.source.close();
  live.run = runId;
  live.windows = new Map();
  live.status = null;
  live.end = null;
  byId('run').hidden = !runId;
  const url = runId ? `events?run=${encodeURIComponent(runId)}` : 'events';
  const source = new EventSource(url);
  live.source = source;
  const on = (name, handle) =>
    source.addEventListener(name, (message) => {
      live.events += 1;
      handle(JSON.parse(message.data));
    });
  source.onopen = () => {
    live.connected = true;
    fill('connection', el('span', { class: 'pass' }, 'live'));
  };
  source.onerror = () => {
    live.connected = false;
    fill('connection', el('span', { class: 'fail' }, 'reconnecting\u2026'));
  };
  on('runs', (runs) => {
    live.runs = runs;
    drawRuns();
    if (!live.run) {
      const running = runs.find((r) => !r.ended && r.state === 'running');
      if (running) {
        history.replaceState(null, '', `?run=${encodeURIComponent(running.run_id)}`);
        follow(running.run_id);
      }
    }
  });
  on('agents', (agents) => {
    live.agents = agents;
    drawAgents();
  });
  on('windows', (update) => {
    if (update.reset) live.windows = new Map();
    for (const w of update.windows) live.windows.set(w.start_s, w);
  });
  on('status', (status) => {
    live.status = status;
    drawStatus();
    drawCharts();
  });
  on('end', (end) => {
    live.end = end;
    if (live.status) drawStatus();
    else drawEnded();
    document.body.setAttribute('data-ended', 'true');
  });
}

function startDashboard() {
  const runId = new URLSearchParams(location.search).get('run');
  follow(runId || null);
  document.body.setAttribute('data-ready', 'true');
}

if (byId('dashboard')) startDashboard();
