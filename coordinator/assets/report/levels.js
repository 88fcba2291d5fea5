// Pages of several runs: a sweep (`stampede sweep --html`, latency against
// throughput with the knee marked, throughput against the level with the
// Universal Scalability Law's curve) and a suite's summary (every entry side
// by side, linked to its own page). Uses report.js's helpers.
'use strict';

function levelText(over, level) {
  return over === 'load.rate' ? `${rate(level)}/s` : `${level}`;
}

function verdictBox(status, text) {
  return el('div', { id: 'verdict', class: `verdict ${status}`, 'data-status': status }, el('span', { class: 'status' }, status.toUpperCase()), ` ${text}`);
}

// A vertical dashed line at x on a uPlot chart, labelled.
function markX(u, x, label, color) {
  const left = u.valToPos(x, 'x', true);
  if (!Number.isFinite(left)) return;
  const ctx = u.ctx;
  ctx.save();
  ctx.strokeStyle = color;
  ctx.setLineDash([6, 4]);
  ctx.lineWidth = 1.5 * devicePixelRatio;
  ctx.beginPath();
  ctx.moveTo(left, u.bbox.top);
  ctx.lineTo(left, u.bbox.top + u.bbox.height);
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.fillStyle = color;
  ctx.font = `${12 * devicePixelRatio}px system-ui, sans-serif`;
  ctx.fillText(label, left + 4 * devicePixelRatio, u.bbox.top + 14 * devicePixelRatio);
  ctx.restore();
}

function sweepHeader(sweep) {
  const knee = sweep.knee;
  const head = el('header', {}, el('h1', {}, `Sweep of "${sweep.scenario}" over ${sweep.over}`));
  if (knee) {
    const above = sweep.steps.filter((s) => !s.passed && s.level > knee.level).map((s) => s.level);
    const failedAt = above.length ? `; the SLO failed at ${levelText(sweep.over, Math.min(...above))}` : '';
    head.append(
      verdictBox('passed', `knee at ${levelText(sweep.over, knee.level)}: ${rate(knee.achieved)} ops/s, p99 ${micros(knee.p99_us)}${failedAt}`),
    );
  } else {
    head.append(verdictBox('failed', 'no knee: even the first step failed the SLO'));
  }
  const slo = sweep.slo.slice();
  if (sweep.achieved_at_least !== null && sweep.achieved_at_least !== undefined) slo.push(`achieved at least ${(sweep.achieved_at_least * 100).toFixed(0)}% of offered`);
  head.append(el('p', {}, `SLO: ${slo.join(', ') || 'none'}. ${sweep.steps.length} steps; each is a run of its own on the same agents.`));
  if (knee) {
    head.append(
      table(
        ['knee', 'level', 'achieved ops/s', 'p50', 'p99', 'p99.9', 'errors', 'run'],
        [
          [
            'highest level meeting the SLO',
            { text: levelText(sweep.over, knee.level), figure: 'knee.level', value: knee.level },
            { text: rate(knee.achieved), figure: 'knee.achieved', value: knee.achieved },
            micros(knee.p50_us),
            { text: micros(knee.p99_us), figure: 'knee.p99_us', value: knee.p99_us },
            micros(knee.p999_us),
            String(knee.errors),
            knee.run_id,
          ],
        ],
        { id: 'knee-table' },
      ),
    );
  }
  return head;
}

function stepsSection(sweep) {
  const rows = sweep.steps.map((s) => [
    { text: String(s.step), figure: `step.${s.step}.step`, value: s.step },
    { text: levelText(sweep.over, s.level), figure: `step.${s.step}.level`, value: s.level },
    s.offered === null ? '-' : `${rate(s.offered)}/s`,
    { text: rate(s.achieved), figure: `step.${s.step}.achieved`, value: s.achieved },
    { text: micros(s.p50_us), figure: `step.${s.step}.p50_us`, value: s.p50_us },
    { text: micros(s.p99_us), figure: `step.${s.step}.p99_us`, value: s.p99_us },
    { text: micros(s.p999_us), figure: `step.${s.step}.p999_us`, value: s.p999_us },
    { text: String(s.errors), figure: `step.${s.step}.errors`, value: s.errors },
    s.little_in_flight === null ? '-' : `${s.little_in_flight.toFixed(1)} (${(s.little_ratio * 100).toFixed(0)}%)`,
    { text: s.passed ? 'pass' : `FAIL: ${s.failed.join('; ')}`, class: s.passed ? 'pass' : 'fail', figure: `step.${s.step}.passed`, value: s.passed },
  ]);
  return section(
    'steps',
    'Steps',
    el('p', { class: 'hint' }, 'In the order they ran. "In flight" is throughput x mean latency (Little\'s law), and its share of the slots (connections x pipeline) the step kept.'),
    table(['step', 'level', 'offered', 'achieved ops/s', 'p50', 'p99', 'p99.9', 'errors', 'in flight', 'verdict'], rows, { id: 'steps-table' }),
  );
}

// Latency (p50, p99, p99.9) against achieved throughput, every step a point
// (sorted by throughput), the knee's throughput a dashed line.
function latencySection(sweep) {
  const box = section('latency', 'Latency against throughput');
  const chartBoxEl = chartBox('chart-latency-throughput', 'Latency (from the intended start) at each step\'s achieved throughput');
  box.append(el('p', { class: 'hint' }, 'Each point is one step. The dashed line is the knee: the highest load that met the SLO. Points past it are the steps that failed.'), chartBoxEl);
  const draw = () => {
    const steps = sweep.steps.filter((s) => s.p99_us !== null).slice().sort((a, b) => a.achieved - b.achieved || a.level - b.level);
    if (steps.length === 0) {
      chartBoxEl.append(el('p', {}, 'No step measured any latency.'));
      return;
    }
    const xs = steps.map((s) => s.achieved);
    const knee = sweep.knee;
    const kneeSeries = steps.map((s) => (knee && s.step === knee.step ? s.p99_us : null));
    const series = [
      { label: 'achieved ops/s', value: (u, v) => (v === null ? '-' : `${rate(v)}/s`) },
      { label: 'p50', stroke: COLORS[2], width: 2, value: (u, v) => micros(v), points: { show: true, size: 6 } },
      { label: 'p99', stroke: COLORS[0], width: 2, value: (u, v) => micros(v), points: { show: true, size: 7 } },
      { label: 'p99.9', stroke: COLORS[3], width: 2, value: (u, v) => micros(v), points: { show: true, size: 6 } },
      { label: 'knee (p99)', stroke: COLORS[1], width: 0, value: (u, v) => micros(v), points: { show: true, size: 14, fill: COLORS[1] } },
    ];
    const data = [xs, steps.map((s) => s.p50_us), steps.map((s) => s.p99_us), steps.map((s) => s.p999_us), kneeSeries];
    charts.latency = new uPlot(
      {
        width: width(chartBoxEl),
        height: 320,
        scales: { x: { time: false }, y: { distr: 3 } },
        series,
        axes: [
          { label: 'achieved operations per second', values: (u, values) => values.map((v) => rate(v)) },
          { label: 'latency', size: 70, values: (u, values) => values.map(micros) },
        ],
        hooks: knee ? { draw: [(u) => markX(u, knee.achieved, `knee: ${levelText(sweep.over, knee.level)}`, COLORS[1])] } : {},
      },
      data.map((column, i) => (i === 0 ? column : column.map((v) => (v > 0 ? v : null)))),
      chartBoxEl,
    );
    window.stampedeReport.knee = knee ? { achieved: knee.achieved, p99_us: knee.p99_us, step: knee.step } : null;
  };
  return { box, draw };
}

// Achieved (and offered) throughput against the level, with the USL's
// predicted curve when the sweep has a fit.
function throughputSection(sweep) {
  const box = section('throughput', 'Throughput against the level');
  const chartBoxEl = chartBox('chart-throughput-level', `Throughput at each ${sweep.over}`);
  box.append(chartBoxEl);
  const usl = sweep.usl;
  if (usl) {
    const peak = usl.peak_concurrency === null ? 'no peak predicted (no coherency cost measured)' : `predicted peak ${rate(usl.peak_throughput)} ops/s at concurrency ${usl.peak_concurrency.toFixed(1)}`;
    box.append(
      el('h3', {}, 'Universal Scalability Law'),
      el('p', { class: 'hint' }, 'X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1)), fitted to the achieved throughput at each concurrency N (connections x pipeline, over all agents).'),
      table(
        ['sigma (contention)', 'kappa (coherency)', 'lambda (ops/s per unit)', 'R squared', 'peak'],
        [
          [
            { text: usl.sigma.toFixed(4), figure: 'usl.sigma', value: usl.sigma },
            { text: usl.kappa.toFixed(6), figure: 'usl.kappa', value: usl.kappa },
            { text: usl.lambda.toFixed(1), figure: 'usl.lambda', value: usl.lambda },
            { text: usl.r_squared.toFixed(3), figure: 'usl.r_squared', value: usl.r_squared },
            peak,
          ],
        ],
        { id: 'usl-table' },
      ),
    );
  }
  const draw = () => {
    const steps = sweep.steps.slice().sort((a, b) => a.level - b.level);
    if (steps.length === 0) return;
    const levelOf = (s) => (usl ? s.concurrency : s.level);
    const xs = steps.map(levelOf);
    const series = [
      { label: usl ? 'concurrency' : sweep.over, value: (u, v) => (v === null ? '-' : String(v)) },
      { label: 'achieved', stroke: COLORS[0], width: 2, value: (u, v) => (v === null ? '-' : `${rate(v)}/s`), points: { show: true, size: 7 } },
    ];
    const data = [xs, steps.map((s) => s.achieved)];
    if (steps.some((s) => s.offered !== null)) {
      series.push({ label: 'offered', stroke: COLORS[7], width: 1.5, dash: [5, 4], value: (u, v) => (v === null ? '-' : `${rate(v)}/s`) });
      data.push(steps.map((s) => s.offered));
    }
    if (usl) {
      series.push({ label: 'USL fit', stroke: COLORS[1], width: 1.5, dash: [2, 3], value: (u, v) => (v === null ? '-' : `${rate(v)}/s`) });
      data.push(xs.map((n) => (usl.lambda * n) / (1 + usl.sigma * (n - 1) + usl.kappa * n * (n - 1))));
    }
    charts.throughput = new uPlot(
      {
        width: width(chartBoxEl),
        height: 280,
        scales: { x: { time: false } },
        series,
        axes: [{ label: usl ? 'concurrency (connections x pipeline)' : sweep.over }, { label: 'ops/s', size: 70, values: (u, values) => values.map((v) => rate(v)) }],
      },
      data,
      chartBoxEl,
    );
  };
  return { box, draw };
}

async function sweepMain() {
  const sweep = JSON.parse(document.getElementById('sweep-data').textContent);
  const root = document.getElementById('report');
  root.replaceChildren();
  const parts = [latencySection(sweep), throughputSection(sweep)];
  root.append(sweepHeader(sweep), ...parts.map((p) => p.box), stepsSection(sweep));
  for (const part of parts) part.draw();
}

// The suite's summary: a table of every entry, a link to its own page, and
// bars of throughput and p99 side by side.
async function suiteMain() {
  const suite = JSON.parse(document.getElementById('suite-data').textContent);
  const root = document.getElementById('report');
  root.replaceChildren();
  const status = suite.exit_code === 0 ? 'passed' : suite.exit_code === 1 ? 'failed' : 'error';
  const words = { passed: 'every entry passed', failed: 'an entry failed its thresholds', error: 'an entry ended in error' };
  const head = el('header', {}, el('h1', {}, `Suite "${suite.suite}"`), verdictBox(status, `${words[status]} (exit ${suite.exit_code})`));
  if (suite.description) head.append(el('p', {}, suite.description));
  const notes = [];
  if (suite.quick) notes.push('--quick: durations and counts divided by 10, runs of 3 s at least');
  if (suite.only.length) notes.push(`only the tags ${suite.only.join(', ')}`);
  if (notes.length) head.append(el('p', { class: 'hint' }, notes.join('; ')));
  const rows = suite.entries.map((e) => {
    const link = e.page ? el('a', { href: e.page, 'data-entry': e.name }, e.name) : e.name;
    const cls = e.verdict === 'passed' ? 'pass' : e.verdict === 'not run' ? '' : 'fail';
    return [
      link,
      e.kind,
      { text: e.verdict, class: cls, figure: `entry.${e.name}.verdict`, value: JSON.stringify(e.verdict) },
      { text: e.ops === null ? '-' : String(e.ops), figure: `entry.${e.name}.ops`, value: e.ops },
      { text: e.throughput === null ? '-' : rate(e.throughput), figure: `entry.${e.name}.throughput`, value: e.throughput },
      { text: e.p50_us === null ? '-' : micros(e.p50_us), figure: `entry.${e.name}.p50_us`, value: e.p50_us },
      { text: e.p99_us === null ? '-' : micros(e.p99_us), figure: `entry.${e.name}.p99_us`, value: e.p99_us },
      { text: e.p999_us === null ? '-' : micros(e.p999_us), figure: `entry.${e.name}.p999_us`, value: e.p999_us },
      { text: e.errors === null ? '-' : String(e.errors), figure: `entry.${e.name}.errors`, value: e.errors },
      e.knee === null ? '-' : String(e.knee),
      e.tags.join(', '),
      e.note && e.exit_code !== 0 ? e.note : '',
    ];
  });
  const entries = section(
    'entries',
    'Entries',
    el('p', { class: 'hint' }, 'A sweep\'s figures are those of its knee. Each name opens that entry\'s own report.'),
    table(['entry', 'kind', 'verdict', 'operations', 'ops/s', 'p50', 'p99', 'p99.9', 'errors', 'knee', 'tags', 'note'], rows, { id: 'entries-table' }),
  );
  const measured = suite.entries.filter((e) => e.throughput !== null);
  const bars = section('bars', 'Side by side');
  const boxes = [chartBox('chart-suite-throughput', 'Throughput (ops/s)'), chartBox('chart-suite-p99', 'p99 latency')];
  bars.append(...boxes);
  root.append(head, entries, bars);
  if (measured.length === 0) {
    bars.append(el('p', {}, 'No entry measured anything.'));
    return;
  }
  const xs = measured.map((_, i) => i);
  const names = measured.map((e) => e.name);
  const bar = uPlot.paths.bars({ size: [0.6, 60] });
  const chart = (box, name, values, format) => {
    charts[name] = new uPlot(
      {
        width: width(box),
        height: 260,
        scales: { x: { time: false, range: [-0.5, measured.length - 0.5] }, y: { range: (u, min, max) => [0, max * 1.1 || 1] } },
        series: [
          { label: 'entry', value: (u, v) => (v === null ? '-' : names[v]) },
          { label: name, fill: `${COLORS[0]}99`, stroke: COLORS[0], paths: bar, points: { show: false }, value: (u, v) => format(v) },
        ],
        axes: [
          { values: (u, splits) => splits.map((v) => (Number.isInteger(v) && names[v] !== undefined ? names[v] : '')), incrs: [1], size: 60, rotate: 0 },
          { size: 70, values: (u, values) => values.map(format) },
        ],
      },
      [xs, values],
      box,
    );
  };
  chart(boxes[0], 'throughput', measured.map((e) => e.throughput), (v) => rate(v));
  chart(boxes[1], 'p99', measured.map((e) => e.p99_us), micros);
}

if (document.getElementById('sweep-data')) start(sweepMain);
if (document.getElementById('suite-data')) start(suiteMain);
