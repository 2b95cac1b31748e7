/**
 * An endpoint's A/B experiment on its card: units per variant, the verdict and why, the primary metric's
 * estimate with its always-valid interval, and a sparkline of that estimate and interval over the looks
 * (the confidence sequence narrowing as units come in). Plain DOM and SVG; no chart library.
 */
import { ExperimentComparison, ExperimentInfo, LookPoint } from './api';
import { el } from './dom';

const SVG = 'http://www.w3.org/2000/svg';
/** The sparkline's drawing box (stretched to the card's width). */
const W = 240;
const H = 44;
/** The vertical range shows at most this many times the newest interval's width around its estimate:
 * the first looks' much wider intervals run off the top and bottom (the funnel of a confidence sequence)
 * rather than flatten the rest. */
const ZOOM = 1;

const VERDICTS: Record<string, [string, string]> = {
  continue: ['continue', ''],
  winner: ['winner', 'wb-ok'],
  futility: ['futility', 'wb-warn'],
  guardrail_breach: ['guardrail breach', 'wb-bad'],
  srm: ['sample-ratio mismatch', 'wb-bad']
};

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | number> = {}
): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) {
    element.setAttribute(name, String(value));
  }
  return element;
}

/** A difference as a person reads it: percentage points for a binary metric, else three figures. */
export function formatEffect(value: number | null, kind: string, signed = true): string {
  if (value === null || value === undefined) {
    return '–';
  }
  const sign = signed && value > 0 ? '+' : '';
  const text = kind === 'binary' ? `${(value * 100).toFixed(1)}` : `${Number(value.toPrecision(3))}`;
  return `${sign}${text.replace('-', '−')}${kind === 'binary' ? ' pp' : ''}`;
}

function formatBound(value: number | null, kind: string, side: 'lower' | 'upper'): string {
  if (value === null || value === undefined) {
    return side === 'lower' ? '−∞' : '+∞';
  }
  return formatEffect(value, kind).replace(' pp', '');
}

export function verdictLabel(experiment: ExperimentInfo): string {
  if (!experiment.verdict) {
    return 'no look yet';
  }
  return VERDICTS[experiment.verdict]?.[0] ?? experiment.verdict;
}

/** The comparison the sparkline follows: the winner's, else the first treatment's. */
export function focus(experiment: ExperimentInfo): ExperimentComparison | null {
  const primary = experiment.primary;
  return primary.find(c => c.variant === experiment.winner) ?? primary[0] ?? null;
}

/** The part of the card that moves with each look (rebuilt in place, its buttons are not). */
export function readout(experiment: ExperimentInfo): HTMLElement[] {
  const out: HTMLElement[] = [];
  const units = el(
    'div',
    'wb-small',
    experiment.variants
      .map(v => `${v.name} ${v.units === null ? '–' : v.units.toLocaleString('en-US')}`)
      .join(' · ') + (experiment.unit === 'key' ? ' units' : ' requests')
  );
  units.dataset.testid = 'wb-experiment-units';
  units.title = experiment.variants
    .map(v => `${v.name}: ${v.model} v${v.version}, ${v.weight}% of units`)
    .join('\n');
  out.push(units);

  const kind = experiment.metric.kind;
  const level = experiment.level === null ? '' : `${Math.round(experiment.level * 1000) / 10}% `;
  for (const comparison of experiment.primary) {
    const line = el('div', 'wb-experiment-estimate');
    line.dataset.testid = 'wb-experiment-estimate';
    line.dataset.variant = comparison.variant;
    const { name, better } = experiment.metric;
    const what = el('div', 'wb-small', `${name} (${better} is better): ${comparison.variant} − ${experiment.control}`);
    const estimate = el('b', comparison.direction ? `wb-${comparison.direction}` : '');
    estimate.textContent = formatEffect(comparison.estimate, kind);
    const interval = el(
      'span',
      'wb-nowrap',
      ` [${formatBound(comparison.lower, kind, 'lower')}, ${formatBound(comparison.upper, kind, 'upper')}]`
    );
    interval.dataset.testid = 'wb-experiment-interval';
    line.append(what, estimate, interval, ' ', el('small', 'wb-muted wb-nowrap', `${level}always-valid`));
    line.title =
      `${experiment.control}: mean ${comparison.control_mean ?? '–'} (n ${comparison.n_control}); ` +
      `${comparison.variant}: mean ${comparison.variant_mean ?? '–'} (n ${comparison.n_variant}); ` +
      `adjusted p ${comparison.adjusted_p ?? '–'}`;
    out.push(line);
  }
  if (!experiment.primary.length && experiment.verdict) {
    out.push(el('div', 'wb-small', `${experiment.metric.name}: too few outcomes to compare yet`));
  }
  const shown = focus(experiment);
  if (shown) {
    out.push(sparkline(experiment, shown.variant));
  }
  const verdict = el('div', 'wb-experiment-verdict');
  const badge = el(
    'span',
    `wb-badge ${VERDICTS[experiment.verdict ?? '']?.[1] ?? ''}`,
    verdictLabel(experiment) + (experiment.winner ? `: ${experiment.winner}` : '')
  );
  badge.dataset.testid = 'wb-experiment-verdict';
  verdict.append(badge);
  if (experiment.reason) {
    const reason = el('span', 'wb-small', ` ${experiment.reason}`);
    reason.dataset.testid = 'wb-experiment-reason';
    verdict.append(reason);
  }
  out.push(verdict);
  return out;
}

/** The estimate (line) and its always-valid interval (band) over the looks, with the zero line. */
export function sparkline(experiment: ExperimentInfo, variant: string): HTMLElement {
  const points = (experiment.series[variant] ?? []).filter(p => p[2] !== null);
  const box = el('div', 'wb-spark');
  box.dataset.testid = 'wb-experiment-spark';
  box.dataset.looks = String(experiment.looks);
  box.dataset.lastLook = String(experiment.last_look ?? '');
  const chart = svg('svg', {
    viewBox: `0 0 ${W} ${H}`,
    preserveAspectRatio: 'none',
    role: 'img',
    width: '100%',
    height: H
  });
  const kind = experiment.metric.kind;
  const last = points[points.length - 1];
  const title = svg('title');
  title.textContent = last
    ? `${variant} − ${experiment.control} on ${experiment.metric.name} over ${experiment.looks} looks: ` +
      `now ${formatEffect(last[2], kind)}, interval ${formatBound(last[3], kind, 'lower')} to ` +
      `${formatBound(last[4], kind, 'upper')} at ${last[1] ?? '–'} units`
    : 'no look compared the variants yet';
  chart.append(title);
  const looks = `${experiment.looks} look${experiment.looks === 1 ? '' : 's'}`;
  const caption = el('span', 'wb-small', last ? `${looks} · ${last[1] ?? '–'} units` : looks);
  caption.dataset.testid = 'wb-experiment-looks';
  box.append(chart, caption);
  if (!last) {
    return box;
  }
  chart.setAttribute('aria-label', title.textContent);

  const [low, high] = range(points);
  const t0 = points[0][0];
  const span = Math.max(last[0] - t0, 1e-9);
  const x = (ts: number): number => (points.length === 1 ? W : ((ts - t0) / span) * W);
  const y = (value: number): number => {
    const clamped = Math.min(Math.max(value, low), high);
    return H - ((clamped - low) / (high - low)) * H;
  };
  const bounded = points.filter(p => p[3] !== null && p[4] !== null);
  if (bounded.length) {
    const upper = bounded.map(p => `${x(p[0]).toFixed(1)},${y(p[4] as number).toFixed(1)}`);
    const lower = bounded.map(p => `${x(p[0]).toFixed(1)},${y(p[3] as number).toFixed(1)}`).reverse();
    if (bounded.length === 1) {
      // one look: its interval as a bar at the right end
      chart.append(
        svg('rect', {
          class: 'wb-spark-band',
          x: W - 4,
          width: 4,
          y: y(bounded[0][4] as number),
          height: Math.max(1, y(bounded[0][3] as number) - y(bounded[0][4] as number))
        })
      );
    } else {
      chart.append(svg('polygon', { class: 'wb-spark-band', points: [...upper, ...lower].join(' ') }));
    }
  }
  chart.append(
    svg('line', {
      class: 'wb-spark-zero',
      x1: 0,
      x2: W,
      y1: y(0),
      y2: y(0),
      'vector-effect': 'non-scaling-stroke'
    })
  );
  chart.append(
    svg('polyline', {
      class: 'wb-spark-line',
      points: points.map(p => `${x(p[0]).toFixed(1)},${y(p[2] as number).toFixed(1)}`).join(' '),
      'vector-effect': 'non-scaling-stroke'
    })
  );
  box.classList.add(`wb-spark-${experiment.verdict ?? 'none'}`);
  return box;
}

/** The vertical range: every finite figure, zoomed around the newest interval, zero always in view. */
function range(points: LookPoint[]): [number, number] {
  const values = points.flatMap(p => [p[2], p[3], p[4]]).filter((v): v is number => v !== null);
  let low = Math.min(0, ...values);
  let high = Math.max(0, ...values);
  const last = [...points].reverse().find(p => p[3] !== null && p[4] !== null);
  if (last) {
    const width = (last[4] as number) - (last[3] as number);
    const centre = last[2] as number;
    low = Math.max(low, Math.min(0, centre - ZOOM * width, last[3] as number));
    high = Math.min(high, Math.max(0, centre + ZOOM * width, last[4] as number));
  }
  if (high - low < 1e-12) {
    high = low + 1;
  }
  const pad = (high - low) * 0.06;
  return [low - pad, high + pad];
}

/** What decides which buttons the card shows: a change of it rebuilds the card, a new look does not. */
export function buttonsKey(experiment: ExperimentInfo | null): string {
  return experiment ? `${experiment.name}|${experiment.state}|${experiment.winner ?? ''}` : '';
}
