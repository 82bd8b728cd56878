// Number, time and money formatting. Values are shown as the server computed them;
// money arrives as decimal strings and is never turned into a float for arithmetic.

const intFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const decFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });

export function num(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  return Math.abs(v) >= 100 ? intFmt.format(v) : decFmt.format(v);
}

export function int(v) {
  if (v === null || v === undefined) return '–';
  return intFmt.format(v);
}

export function pct(v, digits = 1) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  return `${v.toFixed(digits)} %`;
}

export function bytes(v) {
  if (v === null || v === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let x = v;
  let i = 0;
  while (Math.abs(x) >= 1024 && i < units.length - 1) {
    x /= 1024;
    i += 1;
  }
  return `${i === 0 ? x : x.toFixed(1)} ${units[i]}`;
}

/** A decimal money string with its currency, rounded for display to cents. */
export function money(amount, currency = 'USD') {
  if (amount === null || amount === undefined || amount === '') return '–';
  const n = Number(amount);
  if (!Number.isFinite(n)) return `${amount} ${currency}`;
  const digits = Math.abs(n) < 1 && n !== 0 ? 4 : 2;
  return `${n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })} ${currency}`;
}

export function time(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function clock(iso) {
  if (!iso) return '–';
  return new Date(iso).toISOString().slice(11, 19);
}

export function duration(secs) {
  if (secs === null || secs === undefined) return '–';
  const s = Math.max(0, Math.round(secs));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** "12 s ago" / "in 40 s". */
export function relative(iso, now = Date.now()) {
  if (!iso) return '–';
  const diff = (new Date(iso).getTime() - now) / 1000;
  return diff >= 0 ? `in ${duration(diff)}` : `${duration(-diff)} ago`;
}

export function label(snake) {
  if (!snake) return '';
  return snake.replace(/_/g, ' ');
}

const KPI_LABELS = {
  cardinality_reduction_pct: ['Cardinality reduction', '%'],
  data_point_reduction_pct: ['Data-point reduction', '%'],
  cost_reduction_pct: ['Cost reduction', '%'],
  fidelity_pct: ['Fidelity', '%'],
  critical_coverage_pct: ['Critical coverage', '%'],
  agent_cpu_overhead_pct: ['Agent CPU overhead', '%'],
  queries_broken: ['Queries broken', 'queries'],
};

export function kpiLabel(kpi) {
  return (KPI_LABELS[kpi] || [label(kpi)])[0];
}

export function kpiUnit(kpi) {
  return (KPI_LABELS[kpi] || [null, ''])[1];
}

/** The unit of a KPI's baseline and candidate figures (what the percentage compares). */
export function kpiBasisUnit(kpi, currency = '') {
  return {
    cardinality_reduction_pct: 'series',
    data_point_reduction_pct: 'data points',
    cost_reduction_pct: `${currency} / month (list price)`.trim(),
    fidelity_pct: '%',
    critical_coverage_pct: '%',
    agent_cpu_overhead_pct: 'ns of evaluation CPU',
  }[kpi] ?? '';
}
