// The dashboard shell: sign-in, navigation (hash routes), the live indicator, and a
// scope per view so a view's live listeners and timers end when the user leaves it.

import { clearToken, get, me, setToken, token, whenUnauthenticated } from './api.js';
import { errorBox, h, replace } from './dom.js';
import * as live from './live.js';
import { experimentsView } from './experiments.js';
import { experimentView } from './experiment.js';
import { fleetView } from './fleet.js';
import { costView } from './cost.js';
import { templatesView } from './templates.js';
import { newExperimentView } from './new-experiment.js';
import { deploymentsView } from './deployments.js';
import { agentView } from './agent.js';
import { queriesView } from './queries.js';

const view = document.getElementById('view');
const nav = document.getElementById('nav');
const session = document.getElementById('session');
const liveBadge = document.getElementById('live');
const banner = document.getElementById('banner');

/** Listeners, timers and aborts of the current view, released on navigation. */
class Scope {
  constructor() {
    this.cleanups = [];
    this.controller = new AbortController();
  }
  on(type, fn) {
    this.cleanups.push(live.on(type, fn));
  }
  every(ms, fn) {
    const id = setInterval(fn, ms);
    this.cleanups.push(() => clearInterval(id));
  }
  get signal() {
    return this.controller.signal;
  }
  get alive() {
    return !this.controller.signal.aborted;
  }
  dispose() {
    this.controller.abort();
    for (const c of this.cleanups) c();
    this.cleanups = [];
  }
}

let scope = null;

// A dev-mode link carries the token in the fragment (`#token=...`, never sent to the
// server): keep it for this tab and remove it from the address bar and history at once.
function consumeFragmentToken() {
  const m = location.hash.match(/^#token=([^&]+)/);
  if (!m) return;
  setToken(decodeURIComponent(m[1]));
  history.replaceState(null, '', `${location.pathname}${location.search}#/experiments`);
}

function routeOf(hash) {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  return { name: parts[0] || 'experiments', args: parts.slice(1) };
}

const VIEWS = {
  experiments: (sc, args) => {
    if (args[0] === 'new') return newExperimentView(sc);
    return args[0] ? experimentView(sc, args[0]) : experimentsView(sc);
  },
  deployments: (sc, args) => deploymentsView(sc, args[0]),
  fleet: (sc, args) => (args[0] ? agentView(sc, args[0]) : fleetView(sc)),
  cost: (sc) => costView(sc),
  templates: (sc) => templatesView(sc),
  queries: (sc) => queriesView(sc),
};

function render() {
  if (scope) scope.dispose();
  banner.hidden = true;
  if (!token()) {
    showLogin();
    return;
  }
  const route = routeOf(location.hash);
  const make = VIEWS[route.name];
  for (const a of nav.querySelectorAll('a')) a.classList.toggle('active', a.dataset.view === route.name);
  scope = new Scope();
  const root = h('div', { class: 'view', 'data-view': route.name }, h('p', { class: 'muted' }, 'loading…'));
  replace(view, root);
  if (!make) {
    root.appendChild(errorBox({ message: `no such page: ${location.hash}` }));
    return;
  }
  const current = scope;
  Promise.resolve(make(current, route.args)).then((node) => {
    if (current.alive && node) replace(root, node);
  }).catch((err) => {
    if (current.alive) replace(root, errorBox(err));
  });
}

function showLogin(message) {
  nav.hidden = true;
  session.hidden = true;
  live.disconnect();
  const input = h('input', {
    type: 'password', name: 'token', id: 'token-input', autocomplete: 'off', required: true,
    placeholder: 'phx_user_…', 'aria-label': 'API token',
  });
  const status = h('div');
  if (message) status.appendChild(errorBox({ message }));
  const form = h('form', { class: 'panel login', id: 'login' },
    h('h1', 'Sign in to Phoenix'),
    h('p', { class: 'muted' }, 'Paste an API token (viewer, operator or admin). It is kept in this tab only (sessionStorage) and sent as a bearer token to this server.'),
    h('label', { class: 'block' }, h('span', 'API token'), input),
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, 'Sign in')),
    status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setToken(input.value.trim());
    try {
      await start();
    } catch (err) {
      clearToken();
      replace(status, errorBox(err));
    }
  });
  replace(view, form);
  input.focus();
}

async function start() {
  const who = await get('whoami');
  me.name = who.name;
  me.role = who.role;
  replace(document.getElementById('whoami'), who.name, ' · ', h('span', { class: 'badge', id: 'role' }, who.role));
  nav.hidden = false;
  session.hidden = false;
  live.connect();
  if (!location.hash || location.hash === '#') history.replaceState(null, '', '#/experiments');
  render();
}

live.on('status', ({ state }) => {
  liveBadge.className = `live ${state === 'live' ? 'on' : state === 'retry' ? 'retry' : ''}`;
  liveBadge.textContent = state === 'live' ? 'live' : state === 'retry' ? 'reconnecting' : state;
});

whenUnauthenticated((err) => {
  // While signing in, the form reports the refusal itself.
  if (!me.role) return;
  me.role = null;
  clearToken();
  if (scope) scope.dispose();
  showLogin(`signed out: ${err.message}`);
});

document.getElementById('signout').addEventListener('click', () => {
  me.role = null;
  clearToken();
  if (scope) scope.dispose();
  showLogin();
});

window.addEventListener('hashchange', () => {
  if (location.hash.startsWith('#token=')) {
    consumeFragmentToken();
    start().catch((err) => showLogin(err.message));
    return;
  }
  if (token()) render();
});

consumeFragmentToken();
if (token()) {
  start().catch((err) => {
    clearToken();
    showLogin(err.message);
  });
} else {
  showLogin();
}
