// The query inventory: the PromQL queries that matter (alerting and recording rules,
// Grafana dashboards, PromQL lists). Operators import a file (or paste one) and delete
// sources; everyone sees each source's queries and what each needs of the series. A
// source that does not parse is refused whole, with one error per bad query on `content`
// naming the source, the rule or panel and the position.

import { api, canOperate, get, post } from './api.js';
import { errorBox, h, replace, table } from './dom.js';
import { clearErrors, labelled, showFailure } from './forms.js';
import * as fmt from './format.js';

const KINDS = [
  ['rule_file', 'Prometheus rule file (YAML)'],
  ['grafana_dashboard', 'Grafana dashboard (JSON export)'],
  ['promql_list', 'PromQL list (one query a line)'],
];

/** The kind a file name suggests: `.json` a dashboard, `.yml`/`.yaml` a rule file. */
export function kindOf(fileName) {
  if (/\.json$/i.test(fileName)) return 'grafana_dashboard';
  if (/\.ya?ml$/i.test(fileName)) return 'rule_file';
  return 'promql_list';
}

function importForm(onImported) {
  const status = h('div', { id: 'import-status', role: 'status' });
  const file = h('input', { type: 'file', id: 'import-file', accept: '.yml,.yaml,.json,.txt,.promql' });
  const name = h('input', { id: 'import-name', name: 'name', 'data-path': 'name', required: true, size: 32 });
  const kind = h('select', { id: 'import-kind', name: 'kind', 'data-path': 'kind' },
    KINDS.map(([value, text]) => h('option', { value }, text)));
  const content = h('textarea', {
    id: 'import-content', name: 'content', 'data-path': 'content', rows: 10, required: true,
    placeholder: 'groups:\n  - name: node\n    rules:\n      - alert: NodeDown\n        expr: up{job="node"} == 0',
  });
  file.addEventListener('change', async () => {
    const f = file.files && file.files[0];
    if (!f) return;
    content.value = await f.text();
    name.value = f.name;
    kind.value = kindOf(f.name);
  });
  const form = h('form', { id: 'import-form', class: 'panel' },
    h('h2', 'Import'),
    labelled('import-file', 'File', file, 'Its text, name and kind fill the fields below; or paste the content.'),
    labelled('import-name', 'Name', name, 'Unique; importing a name again replaces that source and keeps its id.'),
    labelled('import-kind', 'Kind', kind),
    labelled('import-content', 'Content', content),
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary', id: 'import-button' }, 'Import')),
    status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    replace(status, h('p', { class: 'muted' }, 'importing…'));
    try {
      const imported = await post('queries', { name: name.value.trim(), kind: kind.value, content: content.value });
      replace(status, h('p', { class: 'notice', id: 'import-done' },
        `Imported ${imported.name}: ${fmt.int(imported.queries.length)} queries.`));
      await onImported();
    } catch (err) {
      showFailure(form, status, err);
    }
  });
  return form;
}

function queriesTable(source) {
  const needs = (q) => [
    q.metrics.length ? `metrics: ${q.metrics.join(', ')}` : 'no metric by name',
    q.labels.length ? `labels: ${q.labels.join(', ')}` : null,
  ].filter(Boolean).join('; ');
  return table([
    { label: 'Query', cell: (q) => q.name },
    { label: 'Role', cell: (q) => fmt.label(q.role) },
    { label: 'Where', cell: (q) => h('span', { class: 'small' }, q.location) },
    { label: 'PromQL', cell: (q) => h('code', { class: 'small' }, q.expr) },
    { label: 'Needs', cell: (q) => h('span', { class: 'small' }, needs(q)) },
  ], source.queries);
}

export async function queriesView(scope) {
  const list = h('div', { id: 'query-sources' });
  const status = h('div');
  async function load() {
    const sources = (await get('queries', undefined, scope.signal)).items;
    if (!scope.alive) return;
    if (!sources.length) {
      replace(list, h('p', { class: 'muted', id: 'no-sources' },
        'No queries yet. Without an inventory, recommendations and experiments know nothing of what is queried.'));
      return;
    }
    const total = sources.reduce((n, s) => n + s.queries.length, 0);
    replace(list,
      h('p', { class: 'muted' }, `${fmt.int(sources.length)} sources, ${fmt.int(total)} queries.`),
      sources.map((s) => {
        const remove = canOperate()
          ? h('button', { type: 'button', class: 'danger', 'data-delete': s.name }, 'Delete')
          : null;
        if (remove) {
          remove.addEventListener('click', async () => {
            if (!window.confirm(`Delete the query source ${s.name}? Experiments already created keep their copy.`)) return;
            try {
              await api('DELETE', `queries/${encodeURIComponent(s.id)}`);
              await load();
            } catch (err) {
              replace(status, errorBox(err));
            }
          });
        }
        return h('details', { class: 'panel source', 'data-source': s.name },
          h('summary', h('strong', s.name), ` · ${fmt.label(s.kind)} · ${fmt.int(s.queries.length)} queries · imported ${fmt.relative(s.imported_at)} by ${s.imported_by}`),
          h('div', { class: 'row' }, remove),
          queriesTable(s));
      }));
  }
  await load();
  return h('div',
    h('h1', 'Queries'),
    h('p', { class: 'muted' },
      'The queries that must keep answering: alerting and recording rules, dashboard panels, PromQL lists. ',
      'Recommendations never break them, experiments freeze them at creation and fail a candidate that breaks one (the "queries kept" criterion), and previews report them.'),
    canOperate() ? importForm(load) : null,
    status,
    list);
}
