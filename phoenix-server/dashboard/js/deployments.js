// Quick deployments: the list, a create form (template and parameters from the API,
// selector with the agents it picks now, batch strategy with the schema's bounds and
// defaults), and one deployment's progress per agent, live over the WebSocket
// (`deployment.updated`), with the commands the server allows the token now
// (`allowed_actions`: pause, resume, roll back).

import { canOperate, get, post } from './api.js';
import { card, errorBox, h, replace, table } from './dom.js';
import { field, readParams } from './templates.js';
import { apiSchemas, clearErrors, help, labelled, numberInput, numberOf, selectorFields, showFailure } from './forms.js';
import * as fmt from './format.js';

function pipelineText(p) {
  const params = Object.entries(p.params || {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return params.length ? `${p.template} (${params.join(', ')})` : p.template;
}

/** A deployment's state as a badge (colour from the stylesheet, `data-state`). */
function stateBadge(state) {
  return h('span', { class: 'badge deployment-state', 'data-state': state }, fmt.label(state));
}

function progressText(p) {
  const parts = [`${p.completed}/${p.total} done`];
  if (p.in_progress) parts.push(`${p.in_progress} in progress`);
  if (p.pending) parts.push(`${p.pending} pending`);
  if (p.errors) parts.push(`${p.errors} failed`);
  if (p.rolled_back) parts.push(`${p.rolled_back} rolled back`);
  return parts.join(', ');
}

export async function deploymentsView(scope, id) {
  return id ? deploymentView(scope, id) : listView(scope);
}

async function listView(scope) {
  const body = h('div');
  let items = [];
  async function load() {
    try {
      const page = await get('pipelines/deployments', { limit: 100 }, scope.signal);
      items = page.items;
      replace(body, items.length ? table([
        { label: 'Deployment', cell: (d) => h('a', { href: `#/deployments/${d.id}` }, d.name) },
        { label: 'State', cell: (d) => stateBadge(d.state) },
        { label: 'Pipeline', cell: (d) => pipelineText(d.pipeline) },
        { label: 'Progress', cell: (d) => progressText(d.progress) },
        { label: 'Created', cell: (d) => `${fmt.time(d.created_at)} by ${d.created_by}` },
      ], items, { id: 'deployments', key: (d) => d.id, onclick: (d) => { location.hash = `#/deployments/${d.id}`; } })
        : h('p', { class: 'empty' }, 'No quick deployment yet.'));
    } catch (err) {
      if (err.name !== 'AbortError') replace(body, errorBox(err));
    }
  }
  scope.on('deployment.updated', () => load());
  scope.on('resync', () => load());
  await load();
  return h('div',
    h('section', { class: 'panel' },
      h('h1', 'Quick deployments'),
      h('p', { class: 'muted' }, 'A pipeline rolled out to the agents of a selector, without an experiment, in growing batches that pause at the first agent error.'),
      body),
    canOperate() ? await createForm(scope) : null);
}

async function createForm(scope) {
  const [all, { items: templates }] = await Promise.all([
    apiSchemas(scope.signal), get('pipelines/templates', null, scope.signal),
  ]);
  const props = all.NewDeployment.properties;
  const strategyProps = all.RolloutStrategy.properties;
  const strategyDefault = props.strategy.default;

  const form = h('form', { id: 'deployment-form', novalidate: true });
  const status = h('div', { id: 'deployment-form-status' });
  const name = h('input', { type: 'text', id: 'deployment-name', name: 'name', 'data-path': 'name', size: 40, required: true });
  const picker = h('select', { id: 'deployment-template', name: 'template', 'data-path': 'pipeline.template' },
    templates.map((t) => h('option', { value: t.name }, t.name)));
  const params = h('div');
  const showParams = () => {
    const t = templates.find((x) => x.name === picker.value);
    replace(params, t.params.map((p) => {
      const node = field(p, 'deployment-param');
      node.querySelector('input, select').dataset.path = `pipeline.params.${p.name}`;
      return node;
    }));
  };
  picker.addEventListener('change', showParams);
  showParams();
  const rollbackTo = h('select', { id: 'deployment-rollback-to', name: 'rollback_to', 'data-path': 'rollback_to.template' },
    h('option', { value: '' }, 'server default'), templates.map((t) => h('option', { value: t.name }, t.name)));
  const selector = selectorFields(scope, 'deployment', 'selector', 'would receive it now');
  const strategy = Object.fromEntries(['initial_batch', 'growth_factor', 'max_batch'].map((k) =>
    [k, numberInput(`deployment-${k}`, `strategy.${k}`, strategyProps[k], strategyDefault[k])]));

  form.append(
    labelled(name.id, 'Name', name, props.name.description),
    h('div', { class: 'grid two' },
      h('fieldset', h('legend', 'Pipeline'), labelled(picker.id, 'Template', picker, props.pipeline.description), params,
        labelled(rollbackTo.id, 'Roll back to', rollbackTo, props.rollback_to.description)),
      h('fieldset', h('legend', 'Selector'), h('p', { class: 'muted small' }, props.selector.description), selector.box)),
    h('fieldset', h('legend', 'Batches'), h('p', { class: 'muted small' }, props.strategy.description),
      h('div', { class: 'grid fields' }, Object.entries(strategy).map(([k, input]) =>
        labelled(input.id, fmt.label(k), input, help({ ...strategyProps[k], default: strategyDefault[k] }))))),
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary', id: 'deploy-button' }, 'Deploy')),
    status);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const t = templates.find((x) => x.name === picker.value);
    const body = {
      name: name.value.trim(),
      pipeline: { template: t.name, params: readParams(form, t.params, 'deployment-param') },
      selector: selector.read(),
      strategy: Object.fromEntries(Object.entries(strategy).map(([k, input]) => [k, numberOf(input.value)])),
    };
    if (rollbackTo.value) body.rollback_to = { template: rollbackTo.value };
    replace(status, h('span', { class: 'muted' }, 'deploying…'));
    try {
      const created = await post('pipelines/deployments', body);
      if (scope.alive) location.hash = `#/deployments/${created.id}`;
    } catch (err) {
      if (scope.alive) showFailure(form, status, err);
    }
  });
  return h('section', { class: 'panel', id: 'new-deployment' }, h('h2', 'New quick deployment'), form);
}

const ACTIONS = {
  pause: { label: 'Pause', cls: '' },
  resume: { label: 'Resume', cls: 'primary' },
  rollback: { label: 'Roll back', cls: 'danger' },
};

async function deploymentView(scope, id) {
  const head = h('div');
  const actions = h('div', { class: 'actions', id: 'deployment-actions' });
  const actionStatus = h('div', { id: 'deployment-action-status' });
  const targets = h('div');
  let d = null;

  function draw() {
    replace(head,
      h('div', { class: 'spread' },
        h('h1', { id: 'deployment-name' }, d.name, ' ', h('span', { id: 'deployment-state' }, stateBadge(d.state))),
        h('a', { href: '#/deployments' }, 'All deployments')),
      d.last_error ? h('div', { class: 'error', id: 'deployment-error' }, `paused at: ${d.last_error}`) : null,
      h('div', { class: 'grid cards' },
        card('Pipeline', d.pipeline.template, h('div', h('code', { class: 'wrap' }, pipelineText(d.pipeline)), h('div', `config ${d.config_hash.slice(0, 12)}`))),
        card('Progress', `${d.progress.completed}/${d.progress.total}`, progressText(d.progress)),
        card('Batches', `${d.strategy.initial_batch}, ×${d.strategy.growth_factor}`, `at most ${d.strategy.max_batch} per batch`),
        card('Created', fmt.time(d.created_at), `by ${d.created_by}`)));
    replace(actions, d.allowed_actions.length
      ? d.allowed_actions.filter((a) => ACTIONS[a]).map((a) => {
        const button = h('button', { type: 'submit', class: ACTIONS[a].cls }, ACTIONS[a].label);
        const form = h('form', { 'data-action': a }, button);
        form.addEventListener('submit', async (ev) => {
          ev.preventDefault();
          button.disabled = true;
          replace(actionStatus, h('span', { class: 'muted' }, `${ACTIONS[a].label}…`));
          try {
            d = await post(`pipelines/deployments/${id}/${a}`);
            replace(actionStatus, h('div', { class: 'notice' }, `${ACTIONS[a].label}: now ${fmt.label(d.state)}`));
            if (scope.alive) draw();
          } catch (err) {
            replace(actionStatus, errorBox(err));
            button.disabled = false;
          }
        });
        return form;
      })
      : h('p', { class: 'muted', id: 'no-deployment-actions' }, canOperate() ? 'Nothing can be done in this state.' : 'Signed in as a viewer: pause, resume and roll back need an operator token.'));
    replace(targets, table([
      { label: 'Host', cell: (t) => t.host },
      { label: 'State', cell: (t) => h('span', { class: 'badge target-state', 'data-state': t.state }, fmt.label(t.state)) },
      { label: 'Batch', num: true, cell: (t) => (t.batch === undefined || t.batch === null ? '–' : String(t.batch + 1)) },
      { label: 'Detail', cell: (t) => t.detail || '' },
    ], d.targets, { id: 'deployment-targets', key: (t) => t.agent_id }));
  }

  async function load() {
    try {
      d = await get(`pipelines/deployments/${id}`, null, scope.signal);
      if (scope.alive) draw();
    } catch (err) {
      if (err.name !== 'AbortError' && scope.alive) replace(head, errorBox(err));
    }
  }
  scope.on('deployment.updated', (m) => { if (m.deployment_id === id) load(); });
  scope.on('resync', () => load());
  await load();
  return h('section', { class: 'panel', 'data-deployment': id },
    head, h('h2', 'Actions'), actions, actionStatus, h('h2', 'Agents'), targets);
}
