// Experiments list: phase filter, live phase badges, load more.

import { canOperate, get } from './api.js';
import { errorBox, h, replace, table } from './dom.js';
import { relative, time, label } from './format.js';

// The phases, in life order, as the server's state machine defines them (fetched once).
let phases = null;
function phaseCatalogue(signal) {
  if (!phases) {
    phases = get('experiments/phases', null, signal).catch((err) => {
      phases = null;
      throw err;
    });
  }
  return phases;
}

/** A phase's name as a badge; its colour comes from the stylesheet (`data-phase`). */
export function phaseBadge(phase) {
  return h('span', { class: 'badge phase', 'data-phase': phase }, label(phase));
}

function pipelineText(p) {
  const params = Object.entries(p.params || {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return params.length ? `${p.template} (${params.join(', ')})` : p.template;
}

export async function experimentsView(scope) {
  let catalogue = [];
  try {
    catalogue = await phaseCatalogue(scope.signal);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    // Without the catalogue the list still works, unfiltered.
  }
  const filter = h('select', { id: 'phase-filter', 'aria-label': 'Phase filter' },
    h('option', { value: '' }, 'all phases'), catalogue.map((p) => h('option', { value: p.phase }, label(p.phase))));
  const body = h('div');
  const more = h('button', { type: 'button', hidden: true }, 'Load more');
  let items = [];
  let cursor = null;

  const columns = [
    { label: 'Experiment', cell: (e) => h('a', { href: `#/experiments/${e.id}` }, e.name) },
    { label: 'Phase', cell: (e) => phaseBadge(e.phase) },
    { label: 'Verdict', cell: (e) => (e.verdict ? h('span', { class: `badge ${verdictClass(e.verdict.outcome)}` }, e.verdict.outcome) : '–') },
    { label: 'Baseline → candidate', cell: (e) => `${pipelineText(e.spec.baseline)} → ${pipelineText(e.spec.candidate)}` },
    { label: 'Targets', num: true, cell: (e) => String(e.targets.length) },
    { label: 'Started', cell: (e) => (e.started_at ? time(e.started_at) : '–') },
    { label: 'Ends', cell: (e) => (e.finished_at ? `finished ${relative(e.finished_at)}` : e.ends_at ? relative(e.ends_at) : '–') },
    { label: 'Owner', cell: (e) => e.owner },
  ];

  let failure = null;
  function draw() {
    if (failure) {
      replace(body, errorBox(failure));
    } else if (items.length === 0) {
      replace(body, h('p', { class: 'empty' }, filter.value
        ? `No experiment in phase ${label(filter.value)}.`
        : canOperate()
          ? h('span', 'No experiment yet. ', h('a', { href: '#/experiments/new' }, 'Create one'), ' (or use the API or the phoenix CLI).')
          : 'No experiment yet.'));
    } else {
      replace(body, table(columns, items, {
        id: 'experiments',
        key: (e) => e.id,
        onclick: (e) => { location.hash = `#/experiments/${e.id}`; },
      }));
    }
    more.hidden = !cursor;
  }

  async function load(append = false) {
    try {
      const page = await get('experiments', { phase: filter.value, cursor: append ? cursor : null, limit: 50 }, scope.signal);
      items = append ? items.concat(page.items) : page.items;
      cursor = page.next_cursor || null;
      failure = null;
      draw();
    } catch (err) {
      if (err.name !== 'AbortError') {
        failure = err;
        draw();
      }
    }
  }

  async function refreshOne(id) {
    try {
      const e = await get(`experiments/${id}`, null, scope.signal);
      const i = items.findIndex((x) => x.id === id);
      if (i >= 0) {
        if (filter.value && e.phase !== filter.value) items.splice(i, 1);
        else items[i] = e;
        draw();
      }
    } catch (err) {
      // Gone in the meantime (deleted) or unreachable: the whole list says which.
      if (err.name !== 'AbortError') load();
    }
  }

  filter.addEventListener('change', () => load());
  more.addEventListener('click', () => load(true));
  scope.on('experiment.phase_changed', (m) => {
    if (items.some((x) => x.id === m.experiment_id)) refreshOne(m.experiment_id);
    else load();
  });
  // A new experiment's first event (`created`) does not change a phase: it is progress.
  scope.on('experiment.progress', (m) => {
    if (!items.some((x) => x.id === m.event.experiment_id)) load();
  });
  scope.on('experiment.deleted', () => load());
  scope.on('resync', () => load());
  // Relative times ("in 40 s") move on their own.
  scope.every(5000, draw);
  await load();
  return h('section', { class: 'panel' },
    h('div', { class: 'spread' }, h('h1', 'Experiments'), h('div', { class: 'row' }, filter,
      canOperate() ? h('a', { class: 'button primary', href: '#/experiments/new', id: 'new-experiment-link' }, 'New experiment') : null)),
    body, more);
}

export function verdictClass(outcome) {
  return { pass: 'ok', marginal: 'warn', fail: 'bad', inconclusive: '' }[outcome] ?? '';
}
