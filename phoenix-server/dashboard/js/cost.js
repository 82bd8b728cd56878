// Cost flow and cardinality explorer over the fleet's latest snapshots: where the series
// and the money go, by the chosen dimensions, with recommendations and their savings.

import { get } from './api.js';
import { lineChart } from './charts.js';
import { card, errorBox, h, replace, table } from './dom.js';
import { recommendations } from './experiment.js';
import * as fmt from './format.js';

const BASE_DIMENSIONS = ['metric', 'service', 'namespace', 'host'];

function bar(pct) {
  const inner = h('div');
  // Width through the CSSOM (allowed by the policy; a style attribute would not be).
  inner.style.width = `${Math.max(0, Math.min(100, pct)).toFixed(1)}%`;
  return h('div', { class: 'bar', title: fmt.pct(pct) }, inner);
}

// `metric`, `host`, ... or `label:<key>`, shown as "label <key>".
function dimensionTitle(b) {
  return b.dimension.replace(/^label:/, 'label ');
}

function metricLabels(rows) {
  const columns = [
    { label: 'Metric', cell: (m) => h('span', { class: 'mono small' }, m.metric) },
    { label: 'Label', cell: (m) => h('span', { class: 'mono small' }, m.key) },
    { label: 'Values', num: true, cell: (m) => fmt.int(m.distinct_values) },
    { label: 'Series', num: true, cell: (m) => `${fmt.int(m.series)} of ${fmt.int(m.metric_series)}` },
  ];
  const first = 12;
  return h('div', table(columns, rows.slice(0, first), { id: 'metric-labels' }),
    rows.length > first ? h('details', h('summary', `all ${rows.length}`), table(columns, rows.slice(first))) : null);
}

// Raw vs shipped: on the hosts that report what their deployed pipeline ships, their raw
// input beside that output, priced alike by the server.
function rawVsShipped(flow, cov, cur) {
  const s = flow.shipped;
  const section = h('section', { id: 'raw-vs-shipped' }, h('h2', 'Raw vs shipped'));
  if (!s) {
    section.append(h('p', { class: 'empty' }, `No host reports a shipped output yet: a host does once a pipeline is deployed or promoted on it (${fmt.int(cov.reporting_shipped)} of ${fmt.int(cov.reporting)} hosts).`));
    return section;
  }
  const reduction = (p) => (p == null ? '–' : fmt.pct(p));
  section.append(
    h('p', { class: 'muted small' }, `${fmt.int(s.hosts)} of ${fmt.int(cov.reporting)} hosts report a shipped output; the figures below are theirs only.`),
    table([
      { label: '', cell: (r) => r.name },
      { label: 'Series', num: true, cell: (r) => (r.side ? fmt.int(r.side.series) : reduction(r.series)) },
      { label: 'Points / min', num: true, cell: (r) => (r.side ? fmt.int(r.side.points_per_minute) : reduction(r.points)) },
      { label: 'List / month', num: true, cell: (r) => (r.side ? fmt.money(r.side.cost.gross_monthly, cur) : reduction(r.cost)) },
      { label: 'Cost / month', num: true, cell: (r) => (r.side ? fmt.money(r.side.cost.per_month, cur) : '') },
    ], [
      { name: 'Raw input', side: s.raw },
      { name: 'Shipped', side: s.shipped },
      { name: 'Reduction', series: s.series_reduction_pct, points: s.points_reduction_pct, cost: s.cost_reduction_pct },
    ], { id: 'raw-vs-shipped-table' }));
  return section;
}

export async function costView(scope) {
  const chosen = new Set(BASE_DIMENSIONS);
  const model = h('input', { name: 'pricing_model', id: 'pricing-model', value: 'grafana-cloud-pro', size: 22, 'aria-label': 'pricing model' });
  const top = h('input', { type: 'number', name: 'top', min: 1, max: 1000, value: 10, 'aria-label': 'top groups' });
  // Off: only recommendations under which every inventoried query answers as before.
  const allowChanged = h('input', { type: 'checkbox', name: 'allow_changed_queries', id: 'allow-changed-queries' });
  const dimBox = h('div', { class: 'row', id: 'dimensions' });
  const labelSelect = h('select', { 'aria-label': 'add a label dimension', id: 'label-dimension' }, h('option', { value: '' }, 'add label…'));
  const status = h('div');
  const body = h('div');
  const granularity = h('select', { name: 'granularity', id: 'history-granularity', 'aria-label': 'history granularity' },
    h('option', { value: 'hour' }, 'hourly (7 days)'), h('option', { value: 'day' }, 'daily (90 days)'));
  const historyBox = h('div', { id: 'cost-history' });
  granularity.addEventListener('change', () => loadHistory());
  let labelKeys = [];

  function drawDimensions() {
    const all = [...new Set([...BASE_DIMENSIONS, ...chosen])];
    replace(dimBox, all.map((d) => {
      const box = h('input', { type: 'checkbox', value: d, checked: chosen.has(d) });
      box.addEventListener('change', () => {
        if (box.checked) chosen.add(d);
        else chosen.delete(d);
        load();
      });
      return h('label', { class: 'small' }, box, d);
    }), labelSelect);
    replace(labelSelect, h('option', { value: '' }, 'add label dimension…'),
      labelKeys.filter((k) => !chosen.has(`label:${k.key}`)).map((k) => h('option', { value: `label:${k.key}` }, `${k.key} (${fmt.int(k.distinct_values)} values)`)));
  }
  labelSelect.addEventListener('change', () => {
    if (labelSelect.value) {
      chosen.add(labelSelect.value);
      load();
    }
  });

  async function load() {
    drawDimensions();
    replace(status, h('span', { class: 'muted small' }, 'loading…'));
    const dimension = [...chosen];
    try {
      const [flow, card_] = await Promise.all([
        get('metrics/cost-flow', { pricing_model: model.value.trim(), dimension, allow_changed_queries: allowChanged.checked ? 'true' : undefined }, scope.signal),
        get('metrics/cardinality', { pricing_model: model.value.trim(), dimension, top: top.value }, scope.signal),
      ]);
      labelKeys = card_.label_keys;
      drawDimensions();
      replace(status);
      draw(flow, card_);
      await loadHistory();
    } catch (err) {
      if (err.name !== 'AbortError') replace(status, errorBox(err));
    }
  }

  // Cost over time from the server's hourly or daily rollups, with the promotions and
  // rollbacks in the range marked, and what a month and a year cost (measured when a full
  // window was recorded, otherwise projected from the trend).
  async function loadHistory() {
    try {
      const hist = await get('cost/history', { pricing_model: model.value.trim(), granularity: granularity.value }, scope.signal);
      drawHistory(hist);
    } catch (err) {
      if (err.name !== 'AbortError') replace(historyBox, errorBox(err));
    }
  }

  function figure(label, f, cur) {
    if (!f) return card(label, '–', 'nothing recorded yet');
    return card(label, fmt.money(f.amount, cur), `${f.basis} · from ${fmt.num(f.days)} days · ${f.note}`);
  }

  function drawHistory(hist) {
    const cur = hist.currency;
    const day = hist.granularity === 'day';
    const points = hist.points.map((p) => ({ t: Date.parse(p.start), v: p.total.monthly_cost == null ? null : Number(p.total.monthly_cost) }));
    const markers = hist.markers.map((m) => ({
      t: Date.parse(m.at),
      cls: m.kind,
      short: m.kind === 'promoted' ? '▲ promoted' : '▼ rolled back',
      label: `${m.subject} ${m.name} ${m.kind.replace('_', ' ')} at ${fmt.time(m.at)}`,
    }));
    const chart = lineChart([{ name: `cost / month (${cur})`, cls: 'cost', points }], {
      id: 'cost-history-chart',
      title: `Cost over time (${hist.pricing_model}, ${day ? 'daily' : 'hourly'} means)`,
      yLabel: `${cur} / month`,
      yMin: 0,
      markers,
      empty: 'no history recorded yet: the server records one observation a minute',
      xFormat: (ms) => new Date(ms).toISOString().slice(day ? 0 : 5, day ? 10 : 16).replace('T', ' '),
      tickFormat: (v) => fmt.money(String(v.toFixed(6)), cur),
    });
    replace(historyBox,
      h('div', { class: 'grid cards', id: 'cost-figures' },
        figure('Cost / month', hist.monthly, cur),
        figure('Cost / year', hist.yearly, cur)),
      chart,
      h('details', { id: 'cost-history-table' }, h('summary', `${hist.points.length} ${day ? 'days' : 'hours'} recorded, ${hist.markers.length} promotions and rollbacks (table)`),
        table([
          { label: 'Start (UTC)', cell: (p) => fmt.time(p.start) },
          { label: 'Series', num: true, cell: (p) => fmt.int(p.total.series) },
          { label: 'Points / min', num: true, cell: (p) => fmt.int(p.total.points_per_minute) },
          { label: 'Bytes / month', num: true, cell: (p) => fmt.bytes(p.total.bytes_per_month) },
          { label: 'Cost / month', num: true, cell: (p) => (p.total.monthly_cost == null ? '–' : fmt.money(p.total.monthly_cost, cur)) },
          { label: 'Coverage', num: true, cell: (p) => (p.coverage_pct == null ? '–' : fmt.pct(p.coverage_pct)) },
        ], hist.points),
        hist.markers.length ? table([
          { label: 'At (UTC)', cell: (m) => fmt.time(m.at) },
          { label: 'What', cell: (m) => `${m.subject} ${m.kind.replace('_', ' ')}` },
          { label: 'Name', cell: (m) => m.name },
        ], hist.markers) : null),
      h('p', { class: 'muted small' }, `Hourly buckets kept ${hist.hourly_retention_days} days, daily ${hist.daily_retention_days} days; one observation every ${hist.interval_secs} s.`));
  }

  // Live hosts reporting, hosts no longer live still counted (within the retention), and
  // the oldest snapshot used: the same host set as every other fleet view.
  function coverageCard(cov) {
    const gone = cov.reporting - cov.reporting_live;
    const parts = [`${fmt.int(cov.reporting_live)} of ${fmt.int(cov.live_hosts)} live hosts reporting`];
    if (gone > 0) parts.push(`${fmt.int(gone)} no longer live, within retention`);
    if (cov.oldest_snapshot_at) parts.push(`oldest snapshot ${fmt.relative(cov.oldest_snapshot_at)}`);
    return card('Coverage', cov.percent == null ? '–' : fmt.pct(cov.percent), parts.join(' · '));
  }

  function draw(flow, c) {
    const cf = flow.cost_flow;
    const cur = cf.cost.price_source.currency;
    if (c.hosts === 0) {
      replace(body, h('p', { class: 'empty' }, 'No cardinality snapshot yet: every agent sends one when it starts, then every snapshot interval of the server.'));
      return;
    }
    const src = cf.cost.price_source;
    replace(body,
      h('div', { class: 'grid cards', id: 'cost-summary' },
        card('Hosts', fmt.int(c.hosts), c.taken_to ? `latest snapshot ${fmt.relative(c.taken_to)}` : null),
        coverageCard(c.coverage),
        card('Active series', fmt.int(c.total_series)),
        card('Data points / min', fmt.int(c.points_per_minute)),
        card('Metrics', fmt.int(c.distinct_metrics)),
        card('Cost / month', fmt.money(cf.cost.per_month, cur), `${fmt.money(cf.cost.per_year, cur)} / year`)),
      h('p', { class: 'muted small' },
        `Priced by ${fmt.label(cf.driver)} under ${src.vendor} ${src.product} (${src.sku}, as of ${src.effective_date}; ${src.source}; ${src.price_confirmed ? 'price confirmed on the vendor\'s page' : 'price not confirmed by the vendor'}${src.rule_source ? `; billing rule: ${src.rule_source}, read ${src.rule_read_on || 'on an unrecorded date'}` : ''}). `,
        `Billed ${fmt.int(cf.cost.billable)} ${cf.cost.unit} of ${fmt.int(cf.cost.quantity)} (${cf.cost.quantity_rule}; ${fmt.int(cf.cost.included)} included: ${cf.cost.included_rule}).`),
      cf.notes.map((n) => h('p', { class: 'notice' }, n)),
      h('h2', 'Cost over time'),
      h('label', { class: 'small' }, 'Buckets ', granularity),
      historyBox,
      rawVsShipped(flow, c.coverage, cur),
      h('h2', 'Where the money goes'),
      h('div', { class: 'grid two', id: 'cost-flows' }, cf.flows.map((f) => h('div', { 'data-dimension': f.dimension },
        h('h3', `By ${dimensionTitle(f)}`),
        table([
          { label: f.key || f.dimension, cell: (g) => h('span', { class: 'mono small' }, g.value) },
          { label: fmt.label(cf.driver), num: true, cell: (g) => fmt.int(g.driver_quantity) },
          { label: 'Cost / month', num: true, cell: (g) => fmt.money(g.monthly, cur) },
          { label: 'Share', cell: (g) => h('div', { class: 'row' }, bar(g.share_pct), fmt.pct(g.share_pct)) },
        ], f.groups.slice(0, Number(top.value) || 10))))),
      h('h2', 'Recommendations'),
      flow.recommendations.length ? recommendations(flow.recommendations) : h('p', { class: 'empty' }, 'No recommendation: no label or aggregation would save enough while keeping the query inventory answering.'),
      h('h2', 'Cardinality'),
      h('div', { class: 'grid two', id: 'breakdowns' }, c.breakdowns.map((b) => h('div', { 'data-dimension': b.dimension },
        h('h3', `Series by ${dimensionTitle(b)} (${fmt.int(b.distinct_groups)} groups)`),
        table([
          { label: b.key || b.dimension, cell: (g) => h('span', { class: 'mono small' }, g.value) },
          { label: 'Series', num: true, cell: (g) => fmt.int(g.series) },
          { label: 'Points / min', num: true, cell: (g) => fmt.int(g.points_per_minute) },
          { label: 'Share', cell: (g) => h('div', { class: 'row' }, bar(g.share_pct), fmt.pct(g.share_pct)) },
        ], b.groups)))),
      h('div', { class: 'grid two' },
        h('div', h('h3', 'Label keys'), table([
          { label: 'Key', cell: (k) => h('span', { class: 'mono small' }, k.key) },
          { label: 'Distinct values', num: true, cell: (k) => fmt.int(k.distinct_values) },
          { label: 'Series', num: true, cell: (k) => fmt.int(k.series) },
          { label: '', cell: (k) => {
            const b = h('button', { type: 'button', class: 'small' }, 'break down');
            b.addEventListener('click', () => {
              chosen.add(`label:${k.key}`);
              load();
            });
            return b;
          } },
        ], c.label_keys, { id: 'label-keys' })),
        h('div', h('h3', 'Highest-cardinality labels per metric'), metricLabels(c.metric_labels))));
  }

  const form = h('form', { class: 'inline', id: 'cost-form' },
    h('label', 'Pricing model', model), h('label', 'Top', top),
    h('label', { class: 'small', title: 'Also recommend changes under which an inventoried query answers differently (groups merge, output series lose a label). A change that breaks a query is never recommended.' }, allowChanged, 'allow changed queries'),
    h('button', { type: 'submit', class: 'primary' }, 'Apply'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    load();
  });
  scope.on('resync', load);
  await load();
  return h('section', { class: 'panel' },
    h('h1', 'Cost flow and cardinality'),
    h('p', { class: 'muted small' }, 'From every agent\u2019s latest cardinality snapshot (the raw series its host produces, before any pipeline).'),
    form, h('fieldset', h('legend', 'Dimensions'), dimBox), status, body);
}
