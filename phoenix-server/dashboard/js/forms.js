// What the forms that create things share: the server's OpenAPI document (types, bounds,
// defaults, choices and descriptions of every request field), the server's field errors
// placed next to their fields, and the live list of agents a target selector picks.

import { post } from './api.js';
import { errorBox, h, replace } from './dom.js';

const openapiUrl = new URL('../openapi.json', document.baseURI);

let schemas = null;
/** The OpenAPI document's schemas (fetched once; same origin, no credential needed). */
export function apiSchemas(signal) {
  if (!schemas) {
    schemas = fetch(openapiUrl, { signal, cache: 'no-store', headers: { Accept: 'application/json' } })
      .then((r) => {
        if (!r.ok) throw new Error(`the OpenAPI document answered ${r.status}`);
        return r.json();
      })
      .then((doc) => doc.components.schemas)
      .catch((err) => {
        schemas = null;
        throw err;
      });
  }
  return schemas;
}

export const list = (text) => text.split(',').map((x) => x.trim()).filter(Boolean);

/** `key=value, key=value` into a map; an entry without `=` is reported, not guessed. */
export function parseLabels(text) {
  const labels = {};
  const bad = [];
  for (const item of list(text)) {
    const i = item.indexOf('=');
    if (i <= 0) bad.push(item);
    else labels[item.slice(0, i).trim()] = item.slice(i + 1).trim();
  }
  return { labels, bad };
}

/** A number as typed: a number when it is one, else the text (the server names the field). */
export function numberOf(raw) {
  const t = raw.trim();
  if (t === '') return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : t;
}

/** Help text: a schema property's description with its bounds and default. */
export function help(prop) {
  const bits = [];
  if (prop.minimum !== undefined) bits.push(`min ${prop.minimum}`);
  if (prop.maximum !== undefined && prop.maximum < 1e12) bits.push(`max ${prop.maximum}`);
  if (prop.default !== undefined && typeof prop.default !== 'object') bits.push(`default ${prop.default}`);
  return `${prop.description || ''}${bits.length ? ` (${bits.join(', ')})` : ''}`;
}

/** A labelled control with its help text. */
export function labelled(id, text, control, description) {
  return h('label', { class: 'block', for: id }, h('span', text), control,
    description ? h('div', { class: 'muted small' }, description) : null);
}

/** A number input for a schema property; `path` is the request field it fills. */
export function numberInput(id, path, prop, value = prop.default) {
  return h('input', {
    type: 'number', id, name: id, 'data-path': path,
    min: prop.minimum, max: prop.maximum < 1e12 ? prop.maximum : null, step: 1,
    value: value ?? '',
  });
}

/** Removes the field errors shown under `root`. */
export function clearErrors(root) {
  for (const e of root.querySelectorAll('.field-error-row, .field-error')) e.remove();
  for (const e of root.querySelectorAll('[aria-invalid]')) {
    e.removeAttribute('aria-invalid');
    e.removeAttribute('aria-describedby');
  }
}

const LAST_SEGMENT = /(\.[^.[\]]*|\[\d+\])$/;

/** The element of `path` in `form`, or of its nearest ancestor path (`a.b[2].c` → `a.b[2]` → `a.b`). */
function elementFor(form, path) {
  const all = [...form.querySelectorAll('[data-path]')];
  for (let p = path; p; p = p.replace(LAST_SEGMENT, '')) {
    const el = all.find((x) => x.dataset.path === p);
    if (el) return el;
    if (!LAST_SEGMENT.test(p)) break;
  }
  return null;
}

let errorSeq = 0;
/** Puts each field error (`{field, message}`) next to its field; returns those with no field on the page. */
export function placeErrors(form, details) {
  const rest = [];
  for (const d of details) {
    const el = d.field ? elementFor(form, d.field) : null;
    if (!el) {
      rest.push(d);
      continue;
    }
    const id = `field-error-${++errorSeq}`;
    const note = h('div', { class: 'field-error', id, role: 'alert', 'data-for': d.field }, `${d.field}: ${d.message}`);
    // Inside the field's label, so it stays with the field in any layout; under a table
    // row, as a row of its own.
    const anchor = el.closest('label.block, tr, .table-wrap') || el;
    if (anchor.matches('label.block')) anchor.appendChild(note);
    else if (anchor.matches('tr')) anchor.after(h('tr', { class: 'field-error-row' }, h('td', { colspan: anchor.cells.length }, note)));
    else anchor.after(note);
    el.setAttribute('aria-invalid', 'true');
    el.setAttribute('aria-describedby', id);
  }
  return rest;
}

/**
 * Shows a failed request: field errors at their fields (paths mapped by `remap` to the
 * form's), the message and any unplaced error in `status`; focuses the first bad field.
 */
export function showFailure(form, status, err, remap = (f) => f) {
  clearErrors(form);
  const details = (err.details || []).map((d) => ({ ...d, field: d.field ? remap(d.field) : d.field }));
  const rest = placeErrors(form, details);
  const placed = details.length - rest.length;
  replace(status, errorBox({
    message: placed ? `${err.message} (${placed} field error${placed === 1 ? '' : 's'} shown at the fields)` : err.message,
    details: rest,
  }));
  const first = form.querySelector('[aria-invalid]');
  if (first) first.focus();
}

/**
 * Target selector inputs (labels, hosts) with the live agents they pick, asked of the
 * server (`POST agents/matching`) as the user types. `path` is the selector's request
 * field (`spec.targets`, `selector`); `onMatch` receives each answer's agents.
 */
export function selectorFields(scope, prefix, path, describe, onMatch = () => {}) {
  const labels = h('input', { type: 'text', id: `${prefix}-labels`, name: 'labels', 'data-path': `${path}.labels`, size: 40, placeholder: 'env=prod, role=web' });
  const hosts = h('input', { type: 'text', id: `${prefix}-hosts`, name: 'hosts', 'data-path': `${path}.hosts`, size: 40, placeholder: 'host names or agent ids' });
  const matching = h('div', { id: `${prefix}-matching`, class: 'matching', 'aria-live': 'polite' });
  const box = h('div',
    labelled(labels.id, 'Labels', labels, 'Labels an agent must carry, key=value, comma-separated.'),
    labelled(hosts.id, 'Hosts', hosts, 'Host names or agent ids, comma-separated (empty: any).'),
    matching);
  function read() {
    const parsed = parseLabels(labels.value);
    return { selector: { labels: parsed.labels, hosts: list(hosts.value) }, bad: parsed.bad };
  }
  let timer = null;
  let seq = 0;
  async function refresh() {
    const { selector, bad } = read();
    clearErrors(box);
    if (bad.length) {
      placeErrors(box, [{ field: `${path}.labels`, message: `write key=value: ${bad.join(', ')}` }]);
      replace(matching);
      return;
    }
    const mine = ++seq;
    try {
      const { items } = await post('agents/matching', selector);
      if (mine !== seq || !scope.alive) return;
      onMatch(items);
      replace(matching, items.length
        ? h('div', h('span', { class: 'small match-count' }, `${items.length} live agent${items.length === 1 ? '' : 's'} ${describe}: `),
          h('ul', { class: 'chips' }, items.map((a) => h('li', { 'data-agent': a.id },
            h('span', { class: 'badge', 'data-status': a.status }, a.host), ' ',
            h('span', { class: 'muted small' }, Object.entries(a.labels || {}).map(([k, v]) => `${k}=${v}`).join(', '))))))
        : h('p', { class: 'small match-count' }, `No live agent matches now: nothing to target until one does.`));
    } catch (err) {
      if (mine !== seq || !scope.alive) return;
      const details = err.details || [];
      const rest = placeErrors(box, details.map((d) => ({ ...d, field: d.field ? `${path}.${d.field}` : d.field })));
      replace(matching, rest.length || !details.length ? errorBox({ message: err.message, details: rest }) : null);
    }
  }
  for (const input of [labels, hosts]) {
    input.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(refresh, 250);
    });
  }
  scope.cleanups.push(() => clearTimeout(timer));
  refresh();
  return { box, read: () => read().selector };
}
