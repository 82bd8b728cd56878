// One experiment: live phase timeline, operator actions, verdict, KPI charts (baseline
// vs candidate over time), cost per variant and savings, targets, pipelines, events.

import { api, canOperate, get, post } from './api.js';
import { card, errorBox, h, replace, table } from './dom.js';
import { lineChart } from './charts.js';
import { phaseBadge, verdictClass } from './experiments.js';
import * as fmt from './format.js';

function pipelineText(p) {
  const params = Object.entries(p.params || {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return params.length ? `${p.template} (${params.join(', ')})` : p.template;
}

/**
 * The phases the experiment went through, from its events, plus the ones still ahead
 * (`exp.ahead`: the server says which phases follow when nothing intervenes).
 */
export function phaseSteps(exp, events) {
  // The first event records the creation (its `to` is the phase an experiment starts in).
  const steps = [{ phase: events.length ? events[0].to : exp.phase, at: exp.created_at }];
  for (const e of events) {
    if (e.from !== e.to) steps.push({ phase: e.to, at: e.at, cause: e.cause, actor: e.actor, reason: e.reason });
  }
  const now = Date.now();
  steps.forEach((st, i) => {
    const next = steps[i + 1];
    st.state = next ? 'done' : 'current';
    st.secs = ((next ? new Date(next.at).getTime() : now) - new Date(st.at).getTime()) / 1000;
  });
  for (const p of exp.ahead || []) steps.push({ phase: p, state: 'ahead' });
  return steps;
}

function timeline(exp, events) {
  return h('div', { class: 'timeline', id: 'timeline' }, phaseSteps(exp, events).map((st) =>
    h('div', { class: `step ${st.state}`, 'data-phase': st.phase, title: st.reason || '' },
      h('div', { class: 'name' }, fmt.label(st.phase)),
      st.at ? h('div', { class: 'when' }, fmt.clock(st.at), st.state === 'current' && exp.terminal ? '' : ` · ${fmt.duration(st.secs)}`) : h('div', { class: 'when' }, 'ahead'),
      st.cause ? h('div', { class: 'when' }, `${fmt.label(st.cause)} by ${st.actor.name}`) : null)));
}

export async function experimentView(scope, id) {
  let exp = null;
  let events = [];
  let report = null;
  let cost = null;
  let fleetHosts = '';
  const sections = {
    head: h('div'), actions: h('div'), timing: h('div'), verdict: h('div'), kpis: h('div'),
    charts: h('div'), cost: h('div'), hosts: h('div'), targets: h('div'), pipelines: h('div'), events: h('div'),
  };
  const actionStatus = h('div', { id: 'action-status' });

  // ---- loading ------------------------------------------------------------------------
  async function loadExperiment() {
    exp = await get(`experiments/${id}`, null, scope.signal);
    drawHead();
    drawActions();
    drawTiming();
    drawTargets();
    drawPipelines();
    drawVerdict();
  }
  async function loadEvents() {
    const after = events.length ? String(events[events.length - 1].seq) : undefined;
    let cursor = after;
    for (;;) {
      const page = await get(`experiments/${id}/events`, { cursor, limit: 200 }, scope.signal);
      for (const e of page.items) if (!events.some((x) => x.seq === e.seq)) events.push(e);
      if (!page.next_cursor) break;
      cursor = page.next_cursor;
    }
    events.sort((a, b) => a.seq - b.seq);
    drawHead();
    drawEvents();
  }
  async function loadKpis() {
    report = await get(`experiments/${id}/kpis`, null, scope.signal);
    drawKpis();
    drawCharts();
    drawHosts();
    drawVerdict();
  }
  async function loadCost() {
    cost = await get(`experiments/${id}/cost-analysis`, { fleet_hosts: fleetHosts || undefined }, scope.signal);
    drawCost();
  }
  const guard = (section, fn) => async () => {
    try {
      await fn();
    } catch (err) {
      if (err.name !== 'AbortError' && scope.alive) replace(sections[section], errorBox(err));
    }
  };
  const reloadExperiment = guard('head', loadExperiment);
  const reloadEvents = guard('events', loadEvents);
  const reloadKpis = guard('kpis', loadKpis);
  const reloadCost = guard('cost', loadCost);

  // KPI messages come once per sample batch; coalesce them.
  let kpiTimer = null;
  let lastCost = 0;
  function kpisChanged() {
    clearTimeout(kpiTimer);
    kpiTimer = setTimeout(() => {
      reloadKpis();
      if (Date.now() - lastCost > 10000) {
        lastCost = Date.now();
        reloadCost();
      }
    }, 500);
  }

  // ---- drawing ------------------------------------------------------------------------
  function drawHead() {
    if (!exp) return;
    replace(sections.head,
      h('div', { class: 'head' },
        h('div',
          h('div', { class: 'small' }, h('a', { href: '#/experiments' }, '← Experiments')),
          h('h1', { id: 'experiment-name' }, exp.name, ' ', h('span', { id: 'experiment-phase' }, phaseBadge(exp.phase))),
          exp.description ? h('p', { class: 'muted' }, exp.description) : null),
        sections.timing,
        h('dl', { class: 'kv small' },
          h('dt', 'id'), h('dd', { class: 'mono' }, exp.id),
          h('dt', 'owner'), h('dd', exp.owner),
          h('dt', 'baseline'), h('dd', pipelineText(exp.spec.baseline)),
          h('dt', 'candidate'), h('dd', pipelineText(exp.spec.candidate)),
          h('dt', 'pricing model'), h('dd', exp.spec.pricing_model),
          h('dt', 'version'), h('dd', String(exp.version)))),
      timeline(exp, events),
      exp.failure_reason ? errorBox({ message: `failed: ${exp.failure_reason}` }) : null,
      exp.rollback ? h('div', { class: 'notice', id: 'rollback-record' },
        `${exp.rollback.mode} rollback requested by ${exp.rollback.actor.name} from ${fmt.label(exp.rollback.from)} at ${fmt.time(exp.rollback.requested_at)}`,
        exp.rollback.reason ? `: “${exp.rollback.reason}”` : '') : null);
  }

  function drawTiming() {
    if (!exp) return;
    const s = exp.spec;
    replace(sections.timing, h('dl', { class: 'kv small' },
      h('dt', 'duration'), h('dd', `${fmt.duration(s.duration_secs)} (warm-up ${fmt.duration(s.warmup_secs)}, one sample every ${s.sample_interval_secs} s)`),
      h('dt', 'started'), h('dd', fmt.time(exp.started_at)),
      h('dt', 'running since'), h('dd', fmt.time(exp.running_since)),
      h('dt', 'warm-up until'), h('dd', fmt.time(exp.warmup_until)),
      h('dt', 'ends'), h('dd', exp.ends_at ? `${fmt.time(exp.ends_at)} (${fmt.relative(exp.ends_at)})` : '–'),
      h('dt', 'finished'), h('dd', fmt.time(exp.finished_at)),
      h('dt', 'critical processes'), h('dd', s.critical_processes.join(', ') || '–'),
      h('dt', 'auto rollback / promote'), h('dd', `${s.auto_rollback ? 'yes' : 'no'} / ${s.auto_promote ? `yes, if ${s.auto_promote_min_hosts} host(s) agree` : 'no'}`)));
  }

  function actionForm(name, fields, button, cls, run) {
    const form = h('form', { class: 'action', 'data-action': name }, fields, h('button', { type: 'submit', class: cls }, button));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const btn = form.querySelector('button');
      btn.disabled = true;
      replace(actionStatus);
      try {
        const next = await run(new FormData(form));
        if (!next) return; // deleted: the route changed
        exp = next;
        replace(actionStatus, h('div', { class: 'notice' }, `${button}: accepted, now ${fmt.label(exp.phase)}`));
        drawHead();
        drawActions();
        drawTiming();
        reloadEvents();
      } catch (err) {
        replace(actionStatus, errorBox(err));
      } finally {
        btn.disabled = false;
      }
    });
    return form;
  }

  // One form per action the server allows this token now (`allowed_actions`: decided by
  // the state machine for this role); the page adds no rule of its own.
  const reason = () => h('input', { name: 'reason', placeholder: 'reason (optional)', maxlength: 1024, 'aria-label': 'reason' });
  const reasonOf = (fd) => fd.get('reason') || undefined;
  const ACTION_FORMS = {
    start: () => actionForm('start', [], 'Start', 'primary', () => post(`experiments/${id}/start`)),
    stop: () => actionForm('stop', [reason()], 'Stop', '', (fd) => post(`experiments/${id}/stop`, { reason: reasonOf(fd) })),
    rollback: () => actionForm('rollback', [
      h('select', { name: 'mode', 'aria-label': 'rollback mode' },
        h('option', { value: 'graceful' }, 'graceful (baseline confirmed first)'),
        h('option', { value: 'instant' }, 'instant (remove candidate now)')),
      reason()], 'Roll back', 'danger',
    (fd) => post(`experiments/${id}/rollback`, { mode: fd.get('mode'), reason: reasonOf(fd) })),
    promote: () => actionForm('promote', [reason()], 'Promote', 'primary',
      (fd) => post(`experiments/${id}/promote`, { force: false, reason: reasonOf(fd) })),
    force_promote: () => actionForm('force_promote', [reason()], 'Force promote', 'danger',
      (fd) => post(`experiments/${id}/promote`, { force: true, reason: reasonOf(fd) })),
    delete: () => actionForm('delete', [], 'Delete', 'danger', async () => {
      await api('DELETE', `experiments/${id}`);
      location.hash = '#/experiments';
      return null;
    }),
  };

  function drawActions() {
    if (!exp) return;
    const forms = (exp.allowed_actions || []).filter((a) => ACTION_FORMS[a]).map((a) => ACTION_FORMS[a]());
    let none = `No action applies in phase ${fmt.label(exp.phase)}.`;
    if (!canOperate()) none = 'Signed in as a viewer: start, stop, rollback, promote and delete need an operator token.';
    replace(sections.actions, forms.length
      ? h('div', { class: 'actions', id: 'actions' }, forms)
      : h('p', { class: 'muted small', id: 'no-actions' }, none));
  }

  function drawVerdict() {
    const v = (report && report.verdict) || (exp && exp.verdict);
    if (!v) {
      const judged = report ? report.kpis.samples.judged : 0;
      replace(sections.verdict, h('p', { class: 'muted', id: 'verdict' },
        `Not judged yet: the judge runs when the duration has elapsed (${judged} judged sample${judged === 1 ? '' : 's'} so far).`));
      return;
    }
    const unit = (kpi) => fmt.kpiUnit(kpi);
    replace(sections.verdict, h('div', { id: 'verdict' },
      h('div', { class: 'row' }, h('span', { class: `badge ${verdictClass(v.outcome)}`, id: 'verdict-outcome' }, v.outcome),
        h('span', { class: 'muted' }, `${v.samples} judged samples · decided ${fmt.time(v.decided_at)}`),
        h('span', { class: 'muted', id: 'verdict-hosts' }, `${v.hosts_passing_critical || 0} of ${(v.hosts || []).length} host(s) meet every critical criterion on their own values`)),
      h('ul', v.reasons.map((r) => h('li', r))),
      table([
        { label: 'Criterion', cell: (c) => fmt.kpiLabel(c.criterion.kpi) },
        { label: 'Threshold', cell: (c) => `${c.criterion.comparison === 'at_least' ? '≥' : '≤'} ${fmt.num(c.criterion.threshold)} ${unit(c.criterion.kpi)}` },
        { label: 'Measured (host median; queries: every host)', num: true, cell: (c) => (c.measured === null || c.measured === undefined ? '–' : `${fmt.num(c.measured)} ${unit(c.criterion.kpi)}`) },
        { label: 'Per host', cell: (c) => (c.per_host || []).map((p) => `${p.host} ${p.measured === undefined || p.measured === null ? '–' : fmt.num(p.measured)}${p.passed === false ? ' ✗' : ''}${p.voting ? '' : ' (no vote)'}`).join(', ') || '–' },
        { label: 'Result', cell: (c) => (c.passed === true ? h('span', { class: 'pass' }, 'pass') : c.passed === false ? h('span', { class: 'fail' }, 'fail') : 'n/a') },
        { label: 'Critical', cell: (c) => (c.criterion.critical ? 'yes' : 'no') },
        { label: 'Reason', cell: (c) => c.reason },
      ], v.criteria, { id: 'criteria' })));
  }

  function drawKpis() {
    if (!report) return;
    const k = report.kpis;
    const currency = k.cost && k.cost.measured ? k.cost.measured.baseline.price_source.currency : '';
    const cards = k.kpis.map((kv) => {
      const unit = fmt.kpiUnit(kv.kpi);
      const value = kv.value === null || kv.value === undefined
        ? h('span', { class: 'muted' }, fmt.label(kv.undefined || 'not measured'))
        : `${fmt.num(kv.value)} ${unit}`;
      const sub = kv.baseline !== null && kv.baseline !== undefined && kv.value !== null && kv.value !== undefined
        ? `baseline ${fmt.num(kv.baseline)} → candidate ${fmt.num(kv.candidate)} ${fmt.kpiBasisUnit(kv.kpi, currency)}`
        : null;
      const c = card(fmt.kpiLabel(kv.kpi), value, sub);
      c.dataset.kpi = kv.kpi;
      // How it was computed, on hover and for screen readers.
      c.title = kv.basis;
      c.appendChild(h('details', { class: 'small' }, h('summary', 'how'), h('div', { class: 'muted' }, kv.basis)));
      return c;
    });
    const s = k.samples;
    const b = k.baseline;
    const c = k.candidate;
    replace(sections.kpis,
      h('p', { class: 'muted small', id: 'sample-counts' },
        `${fmt.int(s.received)} samples received, ${fmt.int(s.judged)} judged, ${fmt.int(s.in_warmup)} in warm-up`,
        s.after_end ? `, ${fmt.int(s.after_end)} after the end` : '',
        ` · hosts: ${k.hosts.reporting} reporting of ${k.hosts.targets} targets`,
        k.judged_from ? ` · judged window ${fmt.clock(k.judged_from)}–${fmt.clock(k.judged_to)} UTC` : ''),
      h('div', { class: 'grid cards', id: 'kpis' }, cards),
      h('h3', 'Baseline and candidate (judged samples)'),
      table([
        { label: 'Variant', cell: (r) => r[0] },
        { label: 'Series (mean)', num: true, cell: (r) => fmt.num(r[1].series_mean) },
        { label: 'Series (p95)', num: true, cell: (r) => fmt.int(r[1].series_p95) },
        { label: 'Data points / min', num: true, cell: (r) => fmt.int(r[1].points_per_minute) },
        { label: 'Bytes / month', num: true, cell: (r) => fmt.bytes(r[1].bytes_per_month) },
        { label: 'Fidelity (mean)', num: true, cell: (r) => fmt.pct(r[1].fidelity_pct_mean) },
        { label: 'Critical coverage (min)', num: true, cell: (r) => fmt.pct(r[1].critical_coverage_min_pct) },
        { label: 'Eval time (mean)', num: true, cell: (r) => `${fmt.num(r[1].eval_nanos_mean / 1000)} µs` },
      ], [['baseline', b], ['candidate', c]], { id: 'variants' }),
      k.critical_missing.length ? errorBox({ message: `critical processes missing from the candidate: ${k.critical_missing.map((m) => `${m.name} (${m.samples} samples)`).join(', ')}` }) : null,
      queriesKept(k.queries));
  }

  /** How the experiment's frozen queries fared: counts, then every broken or changed query. */
  function queriesKept(q) {
    if (!q) {
      return h('p', { class: 'muted small', id: 'queries' },
        'Queries kept: not judged (the experiment was created without a query inventory).');
    }
    return h('div', { id: 'queries' },
      h('h3', 'Queries kept'),
      h('p', { class: 'muted small', id: 'queries-counts' },
        `${fmt.int(q.answered)} answered, ${fmt.int(q.changed)} changed, ${fmt.int(q.broken)} broken, ${fmt.int(q.unobserved)} unobserved`),
      q.affected.length
        ? table([
          { label: 'Status', cell: (a) => h('span', { class: a.status === 'broken' ? 'fail' : 'muted' }, a.status) },
          { label: 'Query', cell: (a) => a.name },
          { label: 'Where', cell: (a) => a.location },
          { label: 'Why', cell: (a) => h('ul', a.reasons.map((r) => h('li', r))) },
        ], q.affected, { id: 'queries-affected' })
        : null);
  }

  function drawCharts() {
    if (!report) return;
    const ts = report.kpis.time_series;
    const t = (p) => new Date(p.at).getTime();
    const bands = exp && exp.running_since && exp.warmup_until
      ? [{ from: new Date(exp.running_since).getTime(), to: new Date(exp.warmup_until).getTime(), label: 'warm-up' }]
      : [];
    const pair = (field) => [
      { name: 'baseline', cls: 'baseline', points: ts.map((p) => ({ t: t(p), v: p.baseline[field] })) },
      { name: 'candidate', cls: 'candidate', points: ts.map((p) => ({ t: t(p), v: p.candidate[field] })) },
    ];
    // Bytes in KiB or MiB, so the axis ticks are round numbers of the unit shown.
    const maxBytes = Math.max(0, ...ts.map((p) => Math.max(p.baseline.bytes, p.candidate.bytes)));
    const [bytesUnit, div] = maxBytes >= 1024 * 1024 ? ['MiB', 1024 * 1024] : ['KiB', 1024];
    const scaled = pair('bytes').map((se) => ({ ...se, points: se.points.map((p) => ({ t: p.t, v: p.v / div })) }));
    replace(sections.charts, h('div', { class: 'grid two', id: 'charts' },
      lineChart(pair('series'), { id: 'chart-series', title: 'Active series', yLabel: 'series (sum over hosts)', unit: 'series', yMin: 0, bands }),
      lineChart(pair('points'), { id: 'chart-points', title: 'Data points per sample', yLabel: 'data points / sample', unit: 'points', yMin: 0, bands }),
      lineChart(scaled, { id: 'chart-bytes', title: 'Encoded size per sample', yLabel: `${bytesUnit} / sample`, unit: bytesUnit, yMin: 0, bands }),
      lineChart([
        { name: 'cardinality reduction', cls: 'reduction', points: ts.map((p) => ({ t: t(p), v: p.cardinality_reduction_pct })) },
        { name: 'fidelity', cls: 'fidelity', points: ts.map((p) => ({ t: t(p), v: p.fidelity_pct })) },
      ], { id: 'chart-reduction', title: 'Reduction and fidelity', yLabel: 'percent (%)', unit: '%', yMin: 0, yMax: 100, bands })));
  }

  function drawCost() {
    if (!cost) return;
    const fleetInput = h('input', { type: 'number', min: 1, max: 10000000, step: 1, value: fleetHosts, name: 'fleet_hosts', placeholder: 'e.g. 500', 'aria-label': 'fleet hosts' });
    const fleetForm = h('form', { class: 'inline' }, h('label', 'Project to a fleet of', fleetInput, 'hosts like these'), h('button', { type: 'submit' }, 'Project'));
    fleetForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      fleetHosts = fleetInput.value;
      reloadCost();
    });
    const m = cost.measured;
    const parts = [h('div', { class: 'muted small' }, `pricing model ${cost.pricing_model}`)];
    if (m) parts.push(savingsTable(m, 'cost-measured', 'measured hosts'));
    if (cost.fleet) {
      parts.push(h('h3', `Fleet projection: ${fmt.int(cost.fleet.fleet_hosts)} hosts`),
        h('p', { class: 'muted small' }, cost.fleet.rule), savingsTable(cost.fleet.savings, 'cost-fleet', 'fleet'));
    }
    parts.push(fleetForm);
    for (const n of cost.notes) parts.push(h('p', { class: 'notice' }, n));
    if (cost.recommendations.length) parts.push(h('h3', 'Recommendations'), recommendations(cost.recommendations));
    replace(sections.cost, h('div', { id: 'cost' }, parts));
  }

  function drawHosts() {
    if (!report) return;
    const rows = report.kpis.per_host;
    const val = (r, kpi) => {
      const kv = r.kpis.find((x) => x.kpi === kpi);
      return kv && kv.value !== null && kv.value !== undefined ? `${fmt.num(kv.value)} %` : '–';
    };
    replace(sections.hosts, rows.length ? table([
      { label: 'Host', cell: (r) => r.host.host },
      { label: 'State', cell: (r) => fmt.label(r.state || '–') },
      { label: 'Samples', num: true, cell: (r) => fmt.int(r.samples) },
      { label: 'Cardinality red.', num: true, cell: (r) => val(r, 'cardinality_reduction_pct') },
      { label: 'Data-point red.', num: true, cell: (r) => val(r, 'data_point_reduction_pct') },
      { label: 'Fidelity', num: true, cell: (r) => val(r, 'fidelity_pct') },
      { label: 'Critical coverage', num: true, cell: (r) => val(r, 'critical_coverage_pct') },
    ], rows, { id: 'per-host' }) : h('p', { class: 'empty' }, 'No host has reported yet.'));
  }

  function drawTargets() {
    if (!exp) return;
    replace(sections.targets, exp.targets.length ? table([
      { label: 'Host', cell: (t) => t.host },
      { label: 'Agent', cell: (t) => h('span', { class: 'mono small' }, t.agent_id) },
      { label: 'State', cell: (t) => fmt.label(t.state) },
      { label: 'Detail', cell: (t) => (t.detail ? h('code', { class: 'wrap' }, t.detail) : '') },
      { label: 'Updated', cell: (t) => fmt.time(t.updated_at) },
    ], exp.targets, { id: 'targets' }) : h('p', { class: 'empty' }, 'No target yet (resolved at start).'));
  }

  function drawPipelines() {
    if (!exp) return;
    const p = exp.pipelines;
    replace(sections.pipelines, p ? h('div', { class: 'grid two' },
      ['baseline', 'candidate'].map((v) => h('div',
        h('div', h('strong', v), ' ', h('span', { class: 'muted small' }, `${pipelineText(p[v])} · ${p[v].config_hash.slice(0, 12)}`)),
        h('details', h('summary', 'Collector configuration (YAML)'), h('pre', p[v].collector_yaml)))))
      : h('p', { class: 'empty' }, 'Rendered when the experiment starts.'));
  }

  function drawEvents() {
    replace(sections.events, table([
      { label: '#', num: true, cell: (e) => String(e.seq) },
      { label: 'At (UTC)', cell: (e) => fmt.time(e.at) },
      { label: 'Phase', cell: (e) => (e.from === e.to ? fmt.label(e.to) : `${fmt.label(e.from)} → ${fmt.label(e.to)}`) },
      { label: 'Cause', cell: (e) => fmt.label(e.cause) },
      { label: 'Actor', cell: (e) => `${e.actor.kind}: ${e.actor.name}` },
      { label: 'Reason', cell: (e) => e.reason || '' },
      { label: 'Details', cell: (e) => (e.details && Object.keys(e.details).length ? h('code', { class: 'wrap' }, JSON.stringify(e.details)) : '') },
    ], [...events].reverse(), { id: 'events' }));
  }

  // ---- live ---------------------------------------------------------------------------
  const mine = (m) => m.experiment_id === id || (m.event && m.event.experiment_id === id);
  scope.on('experiment.phase_changed', (m) => {
    if (!mine(m)) return;
    // An action's "accepted" note is out of date once the phase moves on.
    if (actionStatus.querySelector('.notice')) replace(actionStatus);
    reloadExperiment();
    reloadEvents();
    reloadKpis();
    lastCost = Date.now();
    reloadCost();
  });
  scope.on('experiment.progress', (m) => {
    if (!mine(m)) return;
    reloadExperiment();
    reloadEvents();
  });
  scope.on('experiment.kpis', (m) => {
    if (mine(m)) kpisChanged();
  });
  scope.on('experiment.deleted', (m) => {
    if (mine(m)) replace(actionStatus, errorBox({ message: 'this experiment was deleted' }));
  });
  scope.on('resync', () => {
    reloadExperiment();
    reloadEvents();
    reloadKpis();
    reloadCost();
  });
  scope.every(1000, () => {
    if (exp && !exp.terminal) {
      drawHead();
      drawTiming();
    }
  });

  // ---- first load ---------------------------------------------------------------------
  await loadExperiment();
  await Promise.all([reloadEvents(), reloadKpis(), reloadCost()]);
  lastCost = Date.now();

  const panel = (title, node, id2) => h('section', { class: 'panel', id: id2 }, h('h2', title), node);
  return h('div', { 'data-experiment': id },
    h('section', { class: 'panel' }, sections.head, sections.actions, actionStatus),
    panel('Verdict', sections.verdict, 'verdict-panel'),
    panel('KPIs', h('div', sections.kpis, sections.charts), 'kpi-panel'),
    panel('Cost per variant', sections.cost, 'cost-panel'),
    panel('Per host', sections.hosts),
    panel('Targets', sections.targets),
    panel('Pipelines', sections.pipelines),
    panel('Events and provenance', sections.events));
}

export function savingsTable(m, id, what) {
  const cur = m.baseline.price_source.currency;
  const rows = [
    ['per minute', m.baseline.per_minute, m.candidate.per_minute, m.saving_per_minute],
    ['per month (730 h)', m.baseline.per_month, m.candidate.per_month, m.saving_per_month],
    ['per year', m.baseline.per_year, m.candidate.per_year, m.saving_per_year],
    ['list price / month, before allotments', m.baseline.gross_monthly, m.candidate.gross_monthly, null],
  ];
  const src = m.baseline.price_source;
  return h('div', { id },
    table([
      { label: `Cost (${what})`, cell: (r) => r[0] },
      { label: 'Baseline', num: true, cell: (r) => fmt.money(r[1], cur) },
      { label: 'Candidate', num: true, cell: (r) => fmt.money(r[2], cur) },
      { label: 'Saving', num: true, cell: (r) => (r[3] === null ? `${fmt.pct(m.gross_reduction_pct)} less` : h('strong', fmt.money(r[3], cur))) },
    ], rows),
    h('p', { class: 'small' },
      `Reduction ${fmt.pct(m.reduction_pct)} (gross ${fmt.pct(m.gross_reduction_pct)}). `,
      `Billed per ${m.baseline.unit}: baseline ${fmt.int(m.baseline.billable)} billable of ${fmt.int(m.baseline.quantity)} (${m.baseline.quantity_rule}; ${fmt.int(m.baseline.included)} included: ${m.baseline.included_rule}), `,
      `candidate ${fmt.int(m.candidate.billable)} billable of ${fmt.int(m.candidate.quantity)}.`),
    h('p', { class: 'muted small' }, `Price: ${src.vendor} ${src.product} (${src.sku}), as of ${src.effective_date}, source ${src.source}, ${src.price_confirmed ? 'confirmed on the vendor\'s page' : 'not confirmed by the vendor'}${src.rule_source ? `; billing rule: ${src.rule_source}, read ${src.rule_read_on || 'on an unrecorded date'}` : ''}`));
}

export function recommendations(recs) {
  return table([
    { label: 'Recommendation', cell: (r) => r.summary },
    { label: 'Action', cell: (r) => (r.action.kind === 'drop_label' ? `drop label ${r.action.label}` : `aggregate by ${r.action.resource_labels.join(', ')}`) },
    { label: 'Series before → after', num: true, cell: (r) => `${fmt.int(r.series_before)} → ${fmt.int(r.series_after)}` },
    { label: 'Saving / month', num: true, cell: (r) => fmt.money(r.saving_per_month, r.price_source.currency) },
    { label: 'Saving / year', num: true, cell: (r) => fmt.money(r.saving_per_year, r.price_source.currency) },
    { label: 'Method', cell: (r) => r.method },
    { label: 'Queries', cell: recommendationQueries },
  ], recs, { id: 'recommendations' });
}

// What a recommendation does to the query inventory: the queries it keeps (names listed up
// to the server's bound, then a count) and those it changes, with the evaluation's reasons.
function recommendationQueries(r) {
  const q = r.queries;
  if (!q) return h('span', { class: 'muted small' }, 'no query inventory');
  const more = q.kept - q.kept_queries.length;
  const names = q.kept_queries.length ? `: ${q.kept_queries.join(', ')}${more > 0 ? ` and ${fmt.int(more)} more` : ''}` : '';
  return h('div', { class: 'small recommendation-queries' },
    h('div', `keeps ${fmt.int(q.kept)} ${q.kept === 1 ? 'query' : 'queries'} it touches${names}`),
    q.changed.length ? h('ul', { class: 'changed-queries' }, q.changed.map((v) => h('li', h('strong', `changes ${v.name}`), ` (${v.location}): ${v.reasons.join('; ')}`))) : null,
    h('div', { class: 'muted' }, `${fmt.int(q.untouched)} untouched, ${fmt.int(q.unobserved)} without series`));
}
