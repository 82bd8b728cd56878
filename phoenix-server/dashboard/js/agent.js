// One agent: identity and labels, its health over time (the server's history of its
// heartbeats, `GET agents/{id}/health`, read when the page opens and extended with the
// newest points on each `agent.status` event and every 10 s), its pipelines with their
// health, its recent tasks
// (`GET tasks?agent_id=`, re-read every 10 s) and the experiments and deployments they belong to, and, for
// admins, revoking its credential.

import { get, me, post } from './api.js';
import { card, errorBox, h, replace, table } from './dom.js';
import { lineChart } from './charts.js';
import * as fmt from './format.js';

const STATUS_CLASS = { healthy: 'ok', degraded: 'warn', lost: 'bad' };
const REFRESH_POINTS = 30; // newest history points asked for on each refresh

function statusBadge(a) {
  return h('span', { class: `badge ${a.revoked ? 'bad' : STATUS_CLASS[a.status] || ''}`, 'data-status': a.revoked ? 'revoked' : a.status },
    a.revoked ? 'revoked' : a.status);
}

export async function agentView(scope, id) {
  const sections = { head: h('div'), health: h('div'), pipelines: h('div'), tasks: h('div'), revoke: h('div') };
  let readings = []; // the server's health points, oldest first: {t, at, status, cpu, agentCpu, rss, healthy, starting, unhealthy}
  let history = null; // {retention_secs, max_points} of the last answer
  let agent = null;

  function reading(p) {
    const r = p.resources;
    return { t: Date.parse(p.at), at: p.at, status: p.status, cpu: r.cpu_pct, agentCpu: r.agent_cpu_pct, rss: r.agent_rss_bytes,
      healthy: p.pipelines_healthy, starting: p.pipelines_starting, unhealthy: p.pipelines_unhealthy };
  }

  // The whole history when the page opens, then the newest points appended.
  async function loadHealth(full) {
    const answer = await get(`agents/${id}/health`, full ? null : { limit: REFRESH_POINTS }, scope.signal);
    history = answer;
    const points = answer.items.map(reading);
    if (full) {
      readings = points;
    } else {
      const last = readings.length ? readings[readings.length - 1].t : -Infinity;
      readings.push(...points.filter((x) => x.t > last));
      const oldest = Date.now() - answer.retention_secs * 1000;
      readings = readings.filter((x) => x.t >= oldest).slice(-answer.max_points);
    }
  }

  function drawHead() {
    const a = agent;
    const r = a.resources;
    replace(sections.head,
      h('div', { class: 'spread' },
        h('h1', { id: 'agent-host' }, a.host, ' ', h('span', { id: 'agent-status' }, statusBadge(a))),
        h('a', { href: '#/fleet' }, 'All agents')),
      h('p', { class: 'muted small mono' }, a.id),
      h('div', { class: 'grid cards' },
        card('Host CPU', fmt.pct(r.cpu_pct), `${fmt.int(r.process_count)} processes`),
        card('Host memory', fmt.bytes(r.memory_used_bytes), `of ${fmt.bytes(r.memory_total_bytes)}`),
        card('Agent CPU', fmt.pct(r.agent_cpu_pct, 2), 'of one core'),
        card('Agent RSS', fmt.bytes(r.agent_rss_bytes)),
        card('Last heartbeat', fmt.relative(a.last_heartbeat), fmt.time(a.last_heartbeat)),
        card('Refused reports', fmt.int(a.refused_reports || 0), a.last_refusal_reason ? `last: ${a.last_refusal_reason}` : null)),
      h('dl', { class: 'kv', id: 'agent-facts' },
        h('dt', 'Labels'), h('dd', { id: 'agent-labels' }, Object.keys(a.labels).length
          ? Object.entries(a.labels).map(([k, v]) => [h('span', { class: 'badge', 'data-label': k }, `${k}=${v}`), ' '])
          : '–'),
        h('dt', 'Version'), h('dd', `${a.version} (${a.os})`),
        h('dt', 'Capabilities'), h('dd', a.capabilities.join(', ') || '–'),
        h('dt', 'Enrolled'), h('dd', fmt.time(a.enrolled_at)),
        h('dt', 'Process started'), h('dd', a.started_at ? fmt.time(a.started_at) : '–')));
  }

  function drawHealth() {
    const series = (name, cls, pick) => ({ name, cls, points: readings.map((x) => ({ t: x.t, v: pick(x) })) });
    const changes = readings.filter((x, i) => i === 0 || x.status !== readings[i - 1].status);
    const kept = history ? `the last ${fmt.duration(history.retention_secs)}, at most ${fmt.int(history.max_points)} heartbeats` : '';
    replace(sections.health,
      h('p', { class: 'muted small', id: 'agent-health-count' }, `${readings.length} heartbeat${readings.length === 1 ? '' : 's'} recorded by the server (it keeps ${kept}); updated live.`),
      h('div', { class: 'grid two' },
        lineChart([series('host CPU', 'reduction', (x) => x.cpu), series('agent CPU', 'fidelity', (x) => x.agentCpu)],
          { id: 'chart-agent-cpu', title: 'CPU', yLabel: 'percent', unit: '%', yMin: 0 }),
        lineChart([series('agent RSS', 'baseline', (x) => x.rss / (1024 * 1024))],
          { id: 'chart-agent-rss', title: 'Agent resident memory', yLabel: 'MiB', unit: 'MiB', yMin: 0 }),
        lineChart([series('healthy', 'reduction', (x) => x.healthy), series('starting', 'fidelity', (x) => x.starting), series('unhealthy', 'candidate', (x) => x.unhealthy)],
          { id: 'chart-agent-pipelines', title: 'Pipelines by health', yLabel: 'pipelines', unit: '', yMin: 0, tickFormat: (v) => fmt.int(v) })),
      table([
        { label: 'Since', cell: (x) => fmt.time(x.at) },
        { label: 'Status', cell: (x) => h('span', { class: `badge ${STATUS_CLASS[x.status] || ''}` }, x.status) },
        { label: 'Pipelines (healthy / starting / unhealthy)', cell: (x) => `${x.healthy} / ${x.starting} / ${x.unhealthy}` },
      ], changes.slice().reverse(), { id: 'agent-status-history' }));
  }

  function drawPipelines() {
    replace(sections.pipelines, agent.pipelines.length ? table([
      { label: 'Pipeline', cell: (p) => `${p.name} (${p.template})` },
      { label: 'Health', cell: (p) => h('span', { class: `badge ${p.health === 'healthy' ? 'ok' : p.health === 'starting' ? 'info' : 'bad'}`, 'data-health': p.health }, p.health) },
      { label: 'Experiment', cell: (p) => (p.experiment_id ? h('a', { href: `#/experiments/${p.experiment_id}` }, 'open') : '–') },
      { label: 'Detail', cell: (p) => p.detail || '' },
    ], agent.pipelines, { id: 'agent-pipelines' }) : h('p', { class: 'empty', id: 'agent-pipelines' }, 'No pipeline running.'));
  }

  function drawRevoke() {
    if (me.role !== 'admin' || agent.revoked) {
      replace(sections.revoke);
      return;
    }
    const confirm = h('input', { type: 'checkbox', id: 'revoke-confirm', name: 'confirm' });
    const button = h('button', { type: 'submit', class: 'danger', disabled: true }, 'Revoke');
    const status = h('div');
    confirm.addEventListener('change', () => { button.disabled = !confirm.checked; });
    const form = h('form', { 'data-action': 'revoke', class: 'inline' },
      h('label', { for: 'revoke-confirm' }, confirm, 'The agent can no longer authenticate; its experiment targets count as lost.'),
      button);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      button.disabled = true;
      try {
        await post(`agents/${id}/revoke`);
        await load();
      } catch (err) {
        replace(status, errorBox(err));
        button.disabled = false;
      }
    });
    replace(sections.revoke, h('section', { class: 'panel', id: 'agent-revoke' }, h('h2', 'Revoke'), form, status));
  }

  async function loadTasks() {
    try {
      const page = await get('tasks', { agent_id: id, limit: 20 }, scope.signal);
      replace(sections.tasks, page.items.length ? table([
        { label: 'Task', cell: (t) => t.kind },
        { label: 'State', cell: (t) => h('span', { class: 'badge', 'data-state': t.state }, fmt.label(t.state)) },
        { label: 'For', cell: (t) => (t.experiment_id ? h('a', { href: `#/experiments/${t.experiment_id}` }, 'experiment')
          : t.deployment_id ? h('a', { href: `#/deployments/${t.deployment_id}` }, 'deployment') : '–') },
        { label: 'Attempts', num: true, cell: (t) => `${t.attempts}/${t.max_attempts}` },
        { label: 'Updated', cell: (t) => fmt.time(t.updated_at) },
        { label: 'Error', cell: (t) => t.last_error || '' },
      ], page.items, { id: 'agent-tasks', key: (t) => t.id }) : h('p', { class: 'empty', id: 'agent-tasks' }, 'No task yet.'));
    } catch (err) {
      if (err.name !== 'AbortError') replace(sections.tasks, errorBox(err));
    }
  }

  async function load(full = false) {
    try {
      [agent] = await Promise.all([get(`agents/${id}`, null, scope.signal), loadHealth(full)]);
    } catch (err) {
      if (err.name !== 'AbortError' && scope.alive) replace(sections.head, errorBox(err));
      return;
    }
    if (!scope.alive) return;
    drawHead();
    drawHealth();
    drawPipelines();
    drawRevoke();
  }

  scope.on('agent.status', (m) => { if (m.agent_id === id) load(); });
  scope.on('resync', () => { load(true); loadTasks(); });
  scope.every(10000, () => { load(); loadTasks(); });
  await Promise.all([load(true), loadTasks()]);
  if (!agent) return h('section', { class: 'panel' }, sections.head);
  return h('div', { 'data-agent': id },
    h('section', { class: 'panel' }, sections.head),
    h('section', { class: 'panel' }, h('h2', 'Health'), sections.health),
    h('section', { class: 'panel' }, h('h2', 'Pipelines'), sections.pipelines),
    h('section', { class: 'panel' }, h('h2', 'Recent tasks'), sections.tasks),
    sections.revoke);
}
