// New experiment: a form generated from the API (the templates and their parameter
// schemas from `GET pipelines/templates`; every other field's type, bounds, default,
// choices and description from the server's OpenAPI document, schema `ExperimentSpec`),
// the live list of agents the targets pick (`POST agents/matching`), a preview of both
// variants (`POST pipelines/preview` on one of those agents' recorded snapshot, priced
// under the form's pricing model, or on a pasted sample; `POST pipelines/render` without
// either), then create. The server validates; its field errors (422, each with the path
// of its field) are shown next to their fields.

import { get, post } from './api.js';
import { card, h, replace, table } from './dom.js';
import { field, readParams } from './templates.js';
import { apiSchemas, clearErrors, help, labelled, list, numberInput, numberOf, selectorFields, showFailure } from './forms.js';
import * as fmt from './format.js';

export async function newExperimentView(scope) {
  const [spec, { items: templates }] = await Promise.all([
    apiSchemas(scope.signal).then((s) => s.ExperimentSpec.properties),
    get('pipelines/templates', null, scope.signal),
  ]);
  const all = await apiSchemas(scope.signal);
  const kpis = all.KpiName.enum;
  const comparisons = all.Comparison.enum;
  const criterionProps = all.Criterion.properties;

  const form = h('form', { id: 'experiment-form', novalidate: true });
  const status = h('div', { id: 'form-status' });
  const output = h('div', { id: 'new-preview' });

  // ---- controls -------------------------------------------------------------------------
  function number(name, required = false) {
    const prop = spec[name];
    const id = `spec-${name}`;
    const input = numberInput(id, `spec.${name}`, prop);
    input.required = required;
    return labelled(id, fmt.label(name), input, help(prop));
  }
  function checkbox(name) {
    const prop = spec[name];
    const id = `spec-${name}`;
    const input = h('input', { type: 'checkbox', id, name, 'data-path': `spec.${name}`, checked: prop.default === true });
    return h('label', { class: 'block', for: id }, input, ' ', h('span', { class: 'inline' }, fmt.label(name)),
      h('div', { class: 'muted small' }, prop.description));
  }
  function textList(name, placeholder) {
    const prop = spec[name];
    const id = `spec-${name}`;
    const input = h('input', { type: 'text', id, name, 'data-path': `spec.${name}`, placeholder, size: 40 });
    return labelled(id, fmt.label(name), input, `${prop.description} Comma-separated.`);
  }

  const name = h('input', { type: 'text', id: 'exp-name', name: 'name', 'data-path': 'name', required: true, size: 40 });
  const description = h('textarea', { id: 'exp-description', name: 'description', 'data-path': 'description', rows: 2 });

  // Baseline and candidate: a template each, with its parameters from its schema.
  const variants = {};
  function variant(which, initial) {
    const id = `${which}-template`;
    const picker = h('select', { id, name: id, 'data-path': `spec.${which}.template` },
      templates.map((t) => h('option', { value: t.name, selected: t.name === initial }, t.name)));
    const about = h('p', { class: 'muted small' });
    const params = h('div');
    function show() {
      const t = templates.find((x) => x.name === picker.value);
      replace(about, t.description);
      replace(params, t.params.length ? t.params.map((p) => {
        const node = field(p, `${which}-param`);
        node.querySelector('input, select').dataset.path = `spec.${which}.params.${p.name}`;
        return node;
      }) : h('p', { class: 'muted small' }, 'This template has no parameter.'));
    }
    picker.addEventListener('change', show);
    show();
    variants[which] = { picker, read: () => {
      const t = templates.find((x) => x.name === picker.value);
      return { template: t.name, params: readParams(form, t.params, `${which}-param`) };
    } };
    return h('fieldset', { id: `${which}-fieldset` }, h('legend', fmt.label(which)),
      labelled(id, 'Template', picker, spec[which].description), about, params);
  }

  // What the preview runs on: one of the agents the targets pick now (its recorded
  // snapshot, stored by the server), or a pasted sample.
  const previewOn = h('select', { id: 'preview-agent', name: 'agent_id', 'data-path': 'agent_id' });
  function offerAgents(items) {
    const chosen = previewOn.value;
    const keep = previewOn.dataset.pasted === 'yes' ? ''
      : items.some((a) => a.id === chosen) ? chosen : (items[0] ? items[0].id : '');
    replace(previewOn,
      items.map((a) => h('option', { value: a.id, selected: a.id === keep }, `${a.host} (its recorded snapshot)`)),
      h('option', { value: '', selected: keep === '' }, 'a pasted sample (below)'));
    previewOn.value = keep;
    showSample();
  }

  // Targets, with the agents they pick now (asked of the server as the user types).
  const targets = selectorFields(scope, 'targets', 'spec.targets', 'match now', offerAgents);

  // Criteria: rows of KPI, comparison, threshold, critical; the defaults are the schema's.
  const criteriaBody = h('tbody');
  function criterionRow(c) {
    const kpi = h('select', { name: 'kpi', 'aria-label': 'KPI' }, kpis.map((k) => h('option', { value: k, selected: k === c.kpi }, k)));
    const cmp = h('select', { name: 'comparison', 'aria-label': 'comparison' }, comparisons.map((k) => h('option', { value: k, selected: k === c.comparison }, fmt.label(k))));
    const threshold = h('input', { type: 'number', name: 'threshold', step: 'any', value: c.threshold, 'aria-label': 'threshold', size: 8 });
    const critical = h('input', { type: 'checkbox', name: 'critical', checked: c.critical, 'aria-label': 'critical' });
    const remove = h('button', { type: 'button', class: 'remove', 'aria-label': 'remove this criterion' }, 'Remove');
    const row = h('tr', { class: 'criterion' }, h('td', kpi), h('td', cmp), h('td', threshold), h('td', critical), h('td', remove));
    remove.addEventListener('click', () => {
      if (row.nextElementSibling && row.nextElementSibling.matches('.field-error-row')) row.nextElementSibling.remove();
      row.remove();
      renumber();
    });
    return row;
  }
  function renumber() {
    [...criteriaBody.querySelectorAll('tr.criterion')].forEach((row, i) => {
      row.dataset.path = `spec.criteria[${i}]`;
      for (const el of row.querySelectorAll('[name]')) el.dataset.path = `spec.criteria[${i}].${el.name}`;
    });
  }
  for (const c of spec.criteria.default) criteriaBody.appendChild(criterionRow(c));
  renumber();
  const addCriterion = h('button', { type: 'button', id: 'add-criterion' }, 'Add criterion');
  addCriterion.addEventListener('click', () => {
    criteriaBody.appendChild(criterionRow({ kpi: kpis[0], comparison: comparisons[0], threshold: 0, critical: false }));
    renumber();
    criteriaBody.lastChild.querySelector('select').focus();
  });
  const criteriaTable = h('div', { class: 'table-wrap', 'data-path': 'spec.criteria' }, h('table', { id: 'criteria-form' },
    h('thead', h('tr', h('th', 'KPI'), h('th', 'Comparison'), h('th', `Threshold`), h('th', 'Critical'), h('th', ''))),
    criteriaBody));

  const pricingProp = spec.pricing_model;
  const pricing = pricingProp.enum
    ? h('select', { id: 'spec-pricing_model', name: 'pricing_model', 'data-path': 'spec.pricing_model' },
      pricingProp.enum.map((m) => h('option', { value: m, selected: m === pricingProp.default }, m)))
    : h('input', { type: 'text', id: 'spec-pricing_model', name: 'pricing_model', 'data-path': 'spec.pricing_model', value: pricingProp.default });

  const exposition = h('textarea', {
    id: 'preview-exposition', name: 'exposition', 'data-path': 'exposition', rows: 6,
    placeholder: '# A recorded sample (Prometheus text exposition), e.g. an agent\u2019s /metrics/baseline',
  });
  const sampleField = labelled('preview-exposition', 'Recorded sample', exposition);
  function showSample() {
    sampleField.hidden = previewOn.value !== '';
  }
  previewOn.addEventListener('change', () => {
    previewOn.dataset.pasted = previewOn.value === '' ? 'yes' : 'no';
    showSample();
  });
  offerAgents([]);

  const previewButton = h('button', { type: 'button', id: 'preview-button' }, 'Preview');
  const createButton = h('button', { type: 'submit', class: 'primary', id: 'create-button' }, 'Create');

  form.append(
    h('fieldset', h('legend', 'Experiment'),
      labelled('exp-name', 'Name', name), labelled('exp-description', 'Description', description)),
    h('div', { class: 'grid two' }, variant('baseline', 'baseline'), variant('candidate', templates.some((t) => t.name === 'topk') ? 'topk' : templates[0].name)),
    h('fieldset', { id: 'targets-fieldset' }, h('legend', 'Targets'),
      h('p', { class: 'muted small' }, spec.targets.description),
      targets.box),
    h('fieldset', h('legend', 'Timing'),
      h('div', { class: 'grid fields' }, number('duration_secs', true), number('warmup_secs'), number('sample_interval_secs'), number('min_agents'))),
    h('fieldset', { id: 'criteria-fieldset' }, h('legend', 'Criteria'),
      h('p', { class: 'muted small' }, `${spec.criteria.description} ${criterionProps.threshold.description}`),
      criteriaTable, h('div', { class: 'row' }, addCriterion)),
    h('fieldset', h('legend', 'Decisions and cost'),
      checkbox('auto_rollback'), checkbox('auto_promote'),
      h('div', { class: 'grid fields' }, number('auto_promote_min_hosts'),
        labelled('spec-pricing_model', 'Pricing model', pricing, help(pricingProp)))),
    h('fieldset', h('legend', 'Must stay visible'),
      textList('critical_processes', 'postgres, nginx*'), textList('critical_metrics', 'system.cpu.*')),
    h('fieldset', { id: 'preview-fieldset' }, h('legend', 'Preview'),
      h('p', { class: 'muted small' }, 'Both variants are rendered and validated, and evaluated by the server on a recorded input: the cardinality snapshot a target agent last sent (projected series, data points, bytes, fidelity, critical coverage, and the cost under the pricing model above), or a sample pasted here (Prometheus text exposition, such as an agent\u2019s /metrics/baseline; not priced, its interval is unknown).'),
      labelled('preview-agent', 'Preview on', previewOn, 'The agents the targets pick now.'),
      sampleField),
    h('div', { class: 'row' }, previewButton, createButton),
    status);

  // ---- the request and the server's errors ----------------------------------------------
  function request() {
    const s = {
      baseline: variants.baseline.read(),
      candidate: variants.candidate.read(),
      targets: targets.read(),
      criteria: [...criteriaBody.querySelectorAll('tr.criterion')].map((row) => ({
        kpi: row.querySelector('[name=kpi]').value,
        comparison: row.querySelector('[name=comparison]').value,
        threshold: numberOf(row.querySelector('[name=threshold]').value),
        critical: row.querySelector('[name=critical]').checked,
      })),
      auto_rollback: form.querySelector('#spec-auto_rollback').checked,
      auto_promote: form.querySelector('#spec-auto_promote').checked,
      pricing_model: pricing.value.trim(),
      critical_processes: list(form.querySelector('#spec-critical_processes').value),
      critical_metrics: list(form.querySelector('#spec-critical_metrics').value),
    };
    for (const n of ['duration_secs', 'warmup_secs', 'sample_interval_secs', 'min_agents', 'auto_promote_min_hosts']) {
      const v = numberOf(form.querySelector(`#spec-${n}`).value);
      if (v !== undefined) s[n] = v;
    }
    return { name: name.value.trim(), description: description.value, spec: s };
  }

  // ---- preview ----------------------------------------------------------------------------
  previewButton.addEventListener('click', async () => {
    const req = request();
    clearErrors(form);
    replace(status, h('span', { class: 'muted' }, 'rendering…'));
    replace(output);
    const agentId = previewOn.value;
    const sample = agentId ? '' : exposition.value.trim();
    const evaluate = Boolean(agentId || sample);
    const results = {};
    for (const which of ['baseline', 'candidate']) {
      const body = {
        pipeline: req.spec[which],
        critical_processes: req.spec.critical_processes,
        critical_metrics: req.spec.critical_metrics,
      };
      const remap = (f) => (f.startsWith('pipeline') ? `spec.${which}${f.slice('pipeline'.length)}`
        : f.startsWith('critical_') || f === 'pricing_model' ? `spec.${f}` : f);
      try {
        results[which] = agentId
          ? { preview: await post('pipelines/preview', { ...body, agent_id: agentId, pricing_model: req.spec.pricing_model }) }
          : sample
            ? { preview: await post('pipelines/preview', { ...body, exposition: sample }) }
            : { render: await post('pipelines/render', body) };
      } catch (err) {
        if (scope.alive) showFailure(form, status, err, remap);
        return;
      }
    }
    if (!scope.alive) return;
    replace(status);
    replace(output, evaluate ? drawPreview(results) : drawRender(results));
  });

  function drawRender(results) {
    return h('section', { class: 'panel', id: 'preview-result' },
      h('h2', 'Rendered pipelines'),
      h('p', { class: 'muted small' }, 'Pick a target agent or paste a recorded sample above to project series, cost and fidelity.'),
      ['baseline', 'candidate'].map((which) => {
        const r = results[which].render;
        return h('div', { 'data-variant': which },
          h('h3', fmt.label(which), ' ', h('span', { class: `badge ${r.validation.valid ? 'ok' : 'bad'}` }, r.validation.valid ? 'valid' : 'invalid')),
          r.validation.issues.map((i) => h('div', { class: 'error' }, `${i.path}: ${i.message}`)),
          h('details', h('summary', 'Collector configuration (YAML)'), h('pre', r.rendered.collector_yaml)));
      }));
  }

  function drawPreview(results) {
    const b = results.baseline.preview;
    const c = results.candidate.preview;
    const rows = [
      ['Series', 'series', 'series_reduction_pct'],
      ['Data points', 'points', 'points_reduction_pct'],
      ['Encoded bytes', 'bytes', 'bytes_reduction_pct'],
    ];
    const out = (p, key, pct) => `${fmt.int(p.output[key])} (${fmt.pct(p[pct])} fewer)`;
    const snap = c.snapshot;
    const input = snap ? 'Recorded input' : 'Sample';
    const costs = b.cost && c.cost ? { b: b.cost, c: c.cost, cur: c.cost.output.price_source.currency } : null;
    const saving = costs ? Number(costs.b.output.per_month) - Number(costs.c.output.per_month) : null;
    return h('section', { class: 'panel', id: 'preview-result' },
      h('h2', snap ? `Preview on ${snap.host}\u2019s recorded snapshot` : 'Preview on the pasted sample'),
      snap ? h('p', { class: 'muted small', id: 'preview-source' },
        `The cardinality snapshot agent ${snap.host} sent at ${fmt.time(snap.taken_at)}, covering ${fmt.duration(snap.interval_secs)}.`) : null,
      h('div', { class: 'grid cards' },
        card('Candidate series', fmt.int(c.output.series), `baseline ${fmt.int(b.output.series)}, ${input.toLowerCase()} ${fmt.int(c.input.series)}`),
        card('Candidate bytes', fmt.bytes(c.output.bytes), `baseline ${fmt.bytes(b.output.bytes)}`),
        card('Candidate fidelity (CPU / memory)', `${fmt.pct(c.fidelity.cpu_pct)} / ${fmt.pct(c.fidelity.memory_pct)}`),
        card('Candidate critical coverage', fmt.pct(c.critical_coverage_pct)),
        costs ? card('Baseline cost / month', fmt.money(costs.b.output.per_month, costs.cur), `${costs.b.pricing_model}; the input ${fmt.money(costs.b.input.per_month, costs.cur)}`) : null,
        costs ? card('Candidate cost / month', fmt.money(costs.c.output.per_month, costs.cur), `saving ${fmt.money(saving.toFixed(6), costs.cur)} a month against the baseline`) : null),
      table([
        { label: 'Measure', cell: (r) => r[0] },
        { label: input, num: true, cell: (r) => fmt.int(c.input[r[1]]) },
        { label: `Baseline (vs ${input.toLowerCase()})`, num: true, cell: (r) => out(b, r[1], r[2]) },
        { label: `Candidate (vs ${input.toLowerCase()})`, num: true, cell: (r) => out(c, r[1], r[2]) },
      ], rows, { id: 'new-preview-table' }),
      costs ? table([
        { label: `Cost under ${costs.c.pricing_model}`, cell: (r) => r[0] },
        { label: input, num: true, cell: (r) => fmt.money(r[1].input[r[2]], costs.cur) },
        { label: 'Baseline', num: true, cell: (r) => fmt.money(r[1].output[r[2]], costs.cur) },
        { label: 'Candidate', num: true, cell: (r) => fmt.money(costs.c.output[r[2]], costs.cur) },
      ], [['per month (730 h)', costs.b, 'per_month'], ['per year', costs.b, 'per_year'], ['list price per month, before allotments', costs.b, 'gross_monthly']], { id: 'new-preview-cost' }) : null,
      costs ? h('p', { class: 'muted small' }, `Billed quantity: ${costs.c.output.quantity_rule}. Usage: ${costs.c.output.usage_basis}.`) : null,
      ['baseline', 'candidate'].map((which) => h('details', { 'data-variant': which },
        h('summary', `${fmt.label(which)} Collector configuration (YAML)`),
        h('pre', results[which].preview.collector_yaml))));
  }

  // ---- create -----------------------------------------------------------------------------
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    replace(status, h('span', { class: 'muted' }, 'creating…'));
    createButton.disabled = true;
    try {
      const created = await post('experiments', request());
      if (scope.alive) location.hash = `#/experiments/${created.id}`;
    } catch (err) {
      if (scope.alive) showFailure(form, status, err);
    } finally {
      createButton.disabled = false;
    }
  });

  return h('div', { id: 'new-experiment' },
    h('section', { class: 'panel' },
      h('div', { class: 'spread' }, h('h1', 'New experiment'), h('a', { href: '#/experiments' }, 'Back to the list')),
      h('p', { class: 'muted' }, 'Every field, default and bound below comes from the server. Preview, then create: the experiment waits in created until you start it from its page.'),
      form),
    output);
}
