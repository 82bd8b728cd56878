// Line charts as inline SVG: labelled axes with units, a legend, warm-up shading, and a
// <title> on every point (hover shows the exact value).

import { h, s } from './dom.js';
import { num } from './format.js';

const W = 680;
const H = 270;
const M = { left: 78, right: 36, top: 34, bottom: 48 };

/** Round tick values covering [lo, hi]. */
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw) || 10 * mag;
  const start = Math.floor(lo / step) * step;
  const ticks = [];
  for (let v = start; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1] < hi) ticks.push(Number((ticks[ticks.length - 1] + step).toPrecision(12)));
  return ticks;
}

function clockLabel(ms) {
  return new Date(ms).toISOString().slice(11, 19);
}

/**
 * series: [{name, cls, points: [{t (ms), v (number|null)}]}]
 * opts: {title, yLabel, xLabel, unit, yMin, yMax, bands: [{from, to, label}], tickFormat, id,
 *   xFormat (ms -> axis label), markers: [{t, short, label, cls}] (vertical lines, focusable)}
 */
export function lineChart(series, opts = {}) {
  const all = series.flatMap((se) => se.points.filter((p) => p.v !== null && p.v !== undefined));
  const svg = s('svg', {
    class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', id: opts.id,
    'aria-label': `${opts.title || 'chart'} (${opts.yLabel || ''})`,
  });
  svg.appendChild(s('text', { class: 'title', x: M.left, y: 20 }, opts.title || ''));
  if (all.length === 0) {
    svg.appendChild(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, opts.empty || 'no samples yet'));
    return wrap(svg, series);
  }
  let tMin = Math.min(...all.map((p) => p.t));
  let tMax = Math.max(...all.map((p) => p.t));
  for (const b of opts.bands || []) {
    tMin = Math.min(tMin, b.from);
  }
  for (const m of opts.markers || []) {
    tMin = Math.min(tMin, m.t);
    tMax = Math.max(tMax, m.t);
  }
  const xLabel = opts.xFormat || clockLabel;
  if (tMax - tMin < 10000) {
    tMin -= 5000;
    tMax += 5000;
  }
  const vMax = Math.max(...all.map((p) => p.v));
  const vMin = Math.min(...all.map((p) => p.v));
  const lo = opts.yMin !== undefined ? Math.min(opts.yMin, vMin) : vMin;
  const hi = opts.yMax !== undefined ? Math.max(opts.yMax, vMax) : vMax;
  const yTicks = niceTicks(lo, hi === lo ? lo + 1 : hi);
  const y0 = yTicks[0];
  const y1 = yTicks[yTicks.length - 1];
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const x = (t) => M.left + ((t - tMin) / (tMax - tMin)) * pw;
  const y = (v) => M.top + ph - ((v - y0) / (y1 - y0)) * ph;

  for (const b of opts.bands || []) {
    const from = Math.max(tMin, b.from);
    const to = Math.min(tMax, b.to);
    if (to > from) {
      svg.appendChild(s('rect', { class: 'warmup', x: x(from), y: M.top, width: x(to) - x(from), height: ph }));
      svg.appendChild(s('text', { x: x(from) + 4, y: M.top + 12 }, b.label));
    }
  }
  const grid = s('g', { class: 'grid' });
  const axis = s('g', { class: 'axis' });
  for (const v of yTicks) {
    grid.appendChild(s('line', { x1: M.left, x2: W - M.right, y1: y(v), y2: y(v) }));
    axis.appendChild(s('text', { x: M.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, (opts.tickFormat || num)(v)));
  }
  const xTickCount = 5;
  for (let i = 0; i <= xTickCount; i += 1) {
    const t = tMin + ((tMax - tMin) * i) / xTickCount;
    axis.appendChild(s('line', { x1: x(t), x2: x(t), y1: M.top + ph, y2: M.top + ph + 5 }));
    axis.appendChild(s('text', { x: x(t), y: M.top + ph + 18, 'text-anchor': 'middle' }, xLabel(t)));
  }
  axis.appendChild(s('line', { x1: M.left, x2: W - M.right, y1: M.top + ph, y2: M.top + ph }));
  axis.appendChild(s('line', { x1: M.left, x2: M.left, y1: M.top, y2: M.top + ph }));
  axis.appendChild(s('text', { x: M.left + pw / 2, y: H - 6, 'text-anchor': 'middle' }, opts.xLabel || 'time (UTC)'));
  axis.appendChild(s('text', {
    x: 14, y: M.top + ph / 2, 'text-anchor': 'middle', transform: `rotate(-90 14 ${M.top + ph / 2})`,
  }, opts.yLabel || ''));
  svg.appendChild(grid);
  svg.appendChild(axis);
  for (const m of opts.markers || []) {
    const g = s('g', { class: `marker ${m.cls || ''}`, tabindex: 0, role: 'img', 'aria-label': m.label });
    g.appendChild(s('line', { x1: x(m.t), x2: x(m.t), y1: M.top, y2: M.top + ph }));
    g.appendChild(s('text', { x: x(m.t) + 3, y: M.top + 11 }, m.short || ''));
    g.appendChild(s('title', {}, m.label));
    svg.appendChild(g);
  }

  for (const se of series) {
    let d = '';
    let pen = false;
    for (const p of se.points) {
      if (p.v === null || p.v === undefined) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`;
      pen = true;
    }
    const g = s('g', { class: `series ${se.cls}`, 'data-series': se.name });
    g.appendChild(s('path', { class: `line ${se.cls}`, d }));
    for (const p of se.points) {
      if (p.v === null || p.v === undefined) continue;
      g.appendChild(s('circle', { class: se.cls, cx: x(p.t), cy: y(p.v), r: 2.6 },
        s('title', {}, `${se.name} at ${xLabel(p.t)} UTC: ${opts.tickFormat ? opts.tickFormat(p.v) : `${num(p.v)} ${opts.unit || ''}`}`)));
    }
    svg.appendChild(g);
  }
  return wrap(svg, series);
}

function wrap(svg, series) {
  const legend = h('div', { class: 'legend' },
    series.map((se) => h('span', {}, h('span', { class: `swatch ${se.cls}` }), se.name)));
  return h('figure', { class: 'chart-wrap' }, legend, svg);
}
