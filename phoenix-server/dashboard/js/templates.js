// Pipeline templates: a form per template generated from its parameter schema, the
// rendered Collector configuration with its validation, and a preview on a recorded
// sample (Prometheus text exposition) evaluated by the server's native engine.

import { get, post } from './api.js';
import { card, errorBox, h, replace, table } from './dom.js';
import * as fmt from './format.js';

const LIST_KINDS = new Set(['label_keys', 'targets']);

/** A labelled input for one template parameter (`prefix` keeps ids unique on a page). */
export function field(p, prefix = 'param') {
  const id = `${prefix}-${p.name}`;
  const def = p.default;
  let input;
  switch (p.type) {
    case 'bool':
      input = h('input', { type: 'checkbox', id, name: p.name, checked: def === true });
      break;
    case 'int':
    case 'float':
      input = h('input', { type: 'number', id, name: p.name, min: p.min, max: p.max, step: p.type === 'int' ? 1 : 'any', value: def ?? '' });
      break;
    case 'enum':
      input = h('select', { id, name: p.name }, (p.values || []).map((v) => h('option', { value: v, selected: v === def }, v)));
      break;
    default:
      input = h('input', {
        type: 'text', id, name: p.name, size: 40, maxlength: p.max_len,
        value: Array.isArray(def) ? def.join(', ') : (def ?? ''),
        placeholder: LIST_KINDS.has(p.type) ? 'comma-separated' : p.type === 'duration' ? 'e.g. 10s' : '',
      });
  }
  const bounds = [];
  if (p.min !== undefined && p.min !== null) bounds.push(`min ${p.min}`);
  if (p.max !== undefined && p.max !== null) bounds.push(`max ${p.max}`);
  if (p.max_items) bounds.push(`at most ${p.max_items} items`);
  return h('label', { class: 'block', for: id },
    h('span', p.name, ' ', h('span', { class: 'muted' }, `(${fmt.label(p.type)}${bounds.length ? `, ${bounds.join(', ')}` : ''})`)),
    input, h('div', { class: 'muted small' }, p.description));
}

/** The parameters a form holds, typed by their schema; blanks are left to the defaults. */
export function readParams(form, params, prefix = 'param') {
  const out = {};
  for (const p of params) {
    const el = form.querySelector(`#${prefix}-${p.name}`);
    if (!el) continue;
    if (p.type === 'bool') {
      out[p.name] = el.checked;
      continue;
    }
    const raw = el.value.trim();
    if (raw === '') continue;
    if (p.type === 'int') out[p.name] = Number.parseInt(raw, 10);
    else if (p.type === 'float') out[p.name] = Number(raw);
    else if (LIST_KINDS.has(p.type)) out[p.name] = raw.split(',').map((x) => x.trim()).filter(Boolean);
    else out[p.name] = raw;
  }
  return out;
}

const list = (text) => text.split(',').map((x) => x.trim()).filter(Boolean);

export async function templatesView(scope) {
  const { items } = await get('pipelines/templates', null, scope.signal);
  const picker = h('select', { id: 'template-picker', 'aria-label': 'template' }, items.map((t) => h('option', { value: t.name }, t.name)));
  const formBox = h('div');
  const output = h('div', { id: 'template-output' });

  function show(name) {
    const t = items.find((x) => x.name === name);
    replace(output);
    const critical = h('input', { name: 'critical_processes', size: 40, placeholder: 'comma-separated process names', 'aria-label': 'critical processes' });
    const criticalMetrics = h('input', { name: 'critical_metrics', size: 40, placeholder: 'comma-separated metric patterns', 'aria-label': 'critical metrics' });
    const exposition = h('textarea', { name: 'exposition', id: 'exposition', rows: 8, placeholder: '# A recorded sample in Prometheus text exposition format, e.g. an agent\u2019s /metrics/baseline\nprocess_cpu_time_seconds_total{process_executable_name="postgres",state="user"} 12.5' });
    const form = h('form', { id: 'template-form' },
      h('p', t.description), t.collector_notes ? h('p', { class: 'muted small' }, t.collector_notes) : null,
      h('fieldset', h('legend', 'Parameters'), t.params.length ? t.params.map((p) => field(p)) : h('p', { class: 'muted' }, 'This template has no parameter.')),
      h('fieldset', h('legend', 'Context'),
        h('label', { class: 'block' }, h('span', 'Critical processes'), critical),
        h('label', { class: 'block' }, h('span', 'Critical metrics'), criticalMetrics)),
      h('div', { class: 'row' },
        h('button', { type: 'submit', class: 'primary', name: 'render', value: 'render' }, 'Render and validate')),
      h('fieldset', h('legend', 'Preview on a recorded sample'),
        h('p', { class: 'muted small' }, 'Paste a Prometheus text exposition (node_exporter, an agent\u2019s /metrics/baseline, ...); the server evaluates the pipeline on it with the native engine. Process series (labelled process_pid or process_executable_name, as the agent exports them) are read back as processes, so the process templates rank and protect them as the agent does.'),
        exposition,
        h('div', { class: 'row' }, h('button', { type: 'button', id: 'preview-button' }, 'Preview'))));
    const request = () => ({
      pipeline: { template: t.name, params: readParams(form, t.params) },
      critical_processes: list(critical.value),
      critical_metrics: list(criticalMetrics.value),
    });
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      replace(output, h('span', { class: 'muted' }, 'rendering…'));
      try {
        const r = await post('pipelines/render', request());
        drawRender(r);
      } catch (err) {
        replace(output, errorBox(err));
      }
    });
    form.querySelector('#preview-button').addEventListener('click', async () => {
      replace(output, h('span', { class: 'muted' }, 'evaluating…'));
      try {
        const p = await post('pipelines/preview', { ...request(), exposition: exposition.value });
        drawPreview(p);
      } catch (err) {
        replace(output, errorBox(err));
      }
    });
    replace(formBox, form);
  }

  function drawRender(r) {
    const v = r.validation;
    replace(output, h('div', { id: 'render-result' },
      h('div', { class: 'row' }, h('span', { class: `badge ${v.valid ? 'ok' : 'bad'}`, id: 'render-valid' }, v.valid ? 'valid' : 'invalid'),
        h('span', { class: 'muted small mono' }, `config hash ${r.rendered.config_hash}`)),
      v.issues.length ? table([
        { label: 'Path', cell: (i) => i.path },
        { label: 'Line', num: true, cell: (i) => (i.line ? String(i.line) : '') },
        { label: 'Issue', cell: (i) => i.message },
      ], v.issues) : null,
      v.pipelines.length ? table([
        { label: 'Pipeline', cell: (p) => p.name },
        { label: 'Receivers', cell: (p) => p.receivers.join(', ') },
        { label: 'Processors', cell: (p) => p.processors.join(', ') },
        { label: 'Exporters', cell: (p) => p.exporters.join(', ') },
      ], v.pipelines) : null,
      h('h3', 'OpenTelemetry Collector configuration'),
      h('pre', { id: 'rendered-yaml' }, r.rendered.collector_yaml)));
  }

  function drawPreview(p) {
    const rows = [
      ['Series', p.input.series, p.output.series, p.series_reduction_pct],
      ['Data points', p.input.points, p.output.points, p.points_reduction_pct],
      ['Encoded bytes', p.input.bytes, p.output.bytes, p.bytes_reduction_pct],
    ];
    replace(output, h('div', { id: 'preview-result' },
      h('div', { class: 'grid cards' },
        card('Series reduction', fmt.pct(p.series_reduction_pct), `${fmt.int(p.input.series)} → ${fmt.int(p.output.series)}`),
        card('Process-series reduction', fmt.pct(p.process_series_reduction_pct)),
        card('Fidelity (CPU / memory)', `${fmt.pct(p.fidelity.cpu_pct)} / ${fmt.pct(p.fidelity.memory_pct)}`),
        card('Critical coverage', fmt.pct(p.critical_coverage_pct))),
      table([
        { label: 'Measure', cell: (r) => r[0] },
        { label: 'Input', num: true, cell: (r) => fmt.int(r[1]) },
        { label: 'Output', num: true, cell: (r) => fmt.int(r[2]) },
        { label: 'Reduction', num: true, cell: (r) => fmt.pct(r[3]) },
      ], rows, { id: 'preview-table' }),
      h('details', h('summary', 'Collector configuration (YAML)'), h('pre', p.collector_yaml))));
  }

  picker.addEventListener('change', () => show(picker.value));
  show(items[0] && items[0].name);
  return h('section', { class: 'panel' },
    h('div', { class: 'spread' }, h('h1', 'Pipeline templates'), h('label', 'Template', picker)),
    h('div', { class: 'grid two' }, formBox, output));
}
