// DOM helpers. Everything is built with createElement and text nodes (never innerHTML),
// so no server value is ever interpreted as markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

function append(node, child) {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) {
    for (const c of child) append(node, c);
  } else if (child instanceof Node) {
    node.appendChild(child);
  } else {
    node.appendChild(document.createTextNode(String(child)));
  }
}

function setAttrs(node, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else if (key === 'dataset') {
      Object.assign(node.dataset, value);
    } else if (value === true) {
      node.setAttribute(key, '');
    } else {
      node.setAttribute(key, String(value));
    }
  }
}

/** An HTML element: h('td', {class: 'num'}, '42'). */
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
  } else {
    setAttrs(node, attrs);
  }
  append(node, children);
  return node;
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

/** Replaces the children of `node`. */
export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** A table from column definitions: [{label, num, cell: row => content}]. */
export function table(columns, rows, opts = {}) {
  const head = h('tr', columns.map((c) => h('th', { class: c.num ? 'num' : null, title: c.title }, c.label)));
  const body = rows.map((row) => {
    const tr = h('tr', { class: opts.onclick ? 'clickable' : null, dataset: opts.key ? { key: opts.key(row) } : null },
      columns.map((c) => h('td', { class: c.num ? 'num' : null }, c.cell(row))));
    if (opts.onclick) tr.addEventListener('click', () => opts.onclick(row));
    return tr;
  });
  return h('div', { class: 'table-wrap' }, h('table', { id: opts.id }, h('thead', head), h('tbody', body)));
}

/** An error box with the server's message (and field details when there are some). */
export function errorBox(err) {
  const lines = [err.message || String(err)];
  for (const d of (err.details || [])) {
    if (d && d.field) lines.push(`${d.field}: ${d.message}`);
    else if (d && d.message) lines.push(d.message);
  }
  return h('div', { class: 'error', role: 'alert' }, lines.join('\n'));
}

/** A labelled value card. */
export function card(label, value, sub) {
  return h('div', { class: 'card' }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value),
    sub ? h('div', { class: 'sub' }, sub) : null);
}
