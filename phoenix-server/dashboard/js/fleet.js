// Fleet: every agent with its health, version, host resources, its own CPU/RSS and the
// reports the server refused from it, refreshed live on `agent.status` (a refusal is one).

import { get } from './api.js';
import { card, errorBox, h, replace, table } from './dom.js';
import * as fmt from './format.js';

const STATUS_CLASS = { healthy: 'ok', degraded: 'warn', lost: 'bad' };

export async function fleetView(scope) {
  const body = h('div');
  const updated = h('span', { class: 'muted small', id: 'fleet-updated' });

  function draw(fleet) {
    const s = fleet.summary;
    const versions = Object.entries(s.versions).map(([v, n]) => `${v} × ${n}`).join(', ') || '–';
    const templates = Object.entries(s.pipelines_by_template).map(([t, n]) => `${t} × ${n}`).join(', ') || '–';
    replace(body,
      h('div', { class: 'grid cards', id: 'fleet-summary' },
        card('Agents', fmt.int(s.total), `${s.revoked} revoked`),
        card('Healthy', fmt.int(s.healthy)),
        card('Degraded', fmt.int(s.degraded)),
        card('Lost', fmt.int(s.lost)),
        card('Active experiments', fmt.int(s.active_experiments), `${s.promoted_experiments} promoted`),
        card('Unhealthy pipelines', fmt.int(s.unhealthy_pipelines)),
        card('Refused reports', fmt.int(s.refused_reports || 0), `from ${s.agents_with_refused_reports || 0} agent(s)`)),
      h('p', { class: 'small' }, h('strong', 'Versions: '), versions, ' · ', h('strong', 'Pipelines by template: '), templates),
      fleet.agents.length ? table([
        { label: 'Host', cell: (a) => h('div', h('a', { href: `#/fleet/${a.id}`, class: 'agent-link' }, h('strong', a.host)), h('div', { class: 'muted small mono' }, a.id)) },
        { label: 'Status', cell: (a) => h('span', { class: `badge ${a.revoked ? 'bad' : STATUS_CLASS[a.status] || ''}`, 'data-status': a.status }, a.revoked ? 'revoked' : a.status) },
        { label: 'Version', cell: (a) => h('div', a.version, h('div', { class: 'muted small' }, a.os)) },
        { label: 'Labels', cell: (a) => Object.entries(a.labels).map(([k, v]) => h('span', { class: 'badge' }, `${k}=${v}`)) },
        { label: 'Last heartbeat', cell: (a) => h('span', { title: fmt.time(a.last_heartbeat) }, fmt.relative(a.last_heartbeat)) },
        { label: 'Host CPU', num: true, cell: (a) => fmt.pct(a.resources.cpu_pct) },
        { label: 'Host memory', num: true, cell: (a) => `${fmt.bytes(a.resources.memory_used_bytes)} / ${fmt.bytes(a.resources.memory_total_bytes)}` },
        { label: 'Processes', num: true, cell: (a) => fmt.int(a.resources.process_count) },
        { label: 'Agent CPU', num: true, title: 'the agent process itself, % of one core', cell: (a) => fmt.pct(a.resources.agent_cpu_pct, 2) },
        { label: 'Agent RSS', num: true, cell: (a) => fmt.bytes(a.resources.agent_rss_bytes) },
        { label: 'Refused reports', num: true, title: 'reports the server refused as out of bounds or implausible; hover for the last reason', cell: (a) => (a.refused_reports
          ? h('span', { class: 'fail', 'data-refused': a.refused_reports, title: `last: ${a.last_refusal_reason || '?'} (${fmt.time(a.last_refusal_at)})` }, fmt.int(a.refused_reports))
          : h('span', { 'data-refused': 0 }, '0')) },
        { label: 'Pipelines', cell: (a) => a.pipelines.map((p) => h('div', { class: 'small' },
          h('span', { class: `badge ${p.health === 'healthy' ? 'ok' : p.health === 'starting' ? 'info' : 'bad'}` }, p.health), ' ',
          `${p.name} (${p.template})`, p.experiment_id ? [' · ', h('a', { href: `#/experiments/${p.experiment_id}` }, 'experiment')] : null,
          p.detail ? h('div', { class: 'muted' }, p.detail) : null)) },
      ], fleet.agents, { id: 'agents', key: (a) => a.id }) : h('p', { class: 'empty' }, 'No agent has enrolled yet. See docs/agent.md to run one.'));
    replace(updated, `updated ${fmt.clock(new Date().toISOString())} UTC`);
  }

  let pending = null;
  async function load() {
    try {
      draw(await get('fleet/status', null, scope.signal));
    } catch (err) {
      if (err.name !== 'AbortError') replace(body, errorBox(err));
    }
  }
  // Heartbeats arrive often; one refresh per second at most.
  function soon() {
    if (pending) return;
    pending = setTimeout(() => {
      pending = null;
      if (scope.alive) load();
    }, 1000);
  }
  scope.on('agent.status', soon);
  scope.on('resync', soon);
  // "last heartbeat 3 s ago" and lost detection move without events too.
  scope.every(10000, load);
  await load();
  return h('section', { class: 'panel' }, h('div', { class: 'spread' }, h('h1', 'Fleet'), updated), body);
}
