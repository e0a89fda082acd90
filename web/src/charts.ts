// Chart boxes around uPlot: loading/empty/error states, the test hooks
// (data-chart, data-state, data-points), hover tooltips, a crosshair and
// zoom synced across every chart of a page, legends that toggle series (and
// remember it across refreshes, also from the keyboard), deploy/crash
// marker lines, dots for values with no neighbours (a line needs two
// points), and the still-open last bucket of count charts marked as partial.

import uPlot from 'uplot';
import type { Series } from './api';
import { clear, h } from './dom';
import { MB, axisTimes, fmtBytes, fmtCompact, fmtMs, fmtNum, fmtRange } from './format';
import { palette } from './theme';

export type Unit = 'ms' | 'rpm' | 'count' | 'bytes' | 'load' | 'num';

export interface LineSpec {
  label: string;
  values: Series;
  color: string;
  dash?: number[];
  width?: number;
  show?: boolean;
}

export interface Marker {
  t: number; // seconds
  color: string;
}

/** Frame is what all charts of a page share: the bucket times and display options. */
export interface Frame {
  xs: number[]; // bucket start times, seconds
  step: number; // seconds
  utc: boolean;
  markers: Marker[];
  /** when the view loaded, seconds: the bucket holding it is still open */
  now?: number;
}

/** openIndex is the index of the bucket still filling up at frame.now, or -1. */
export function openIndex(frame: Frame): number {
  const n = frame.xs.length;
  if (frame.now == null || !n) return -1;
  const i = n - 1;
  return frame.xs[i] <= frame.now && frame.now < frame.xs[i] + frame.step ? i : -1;
}

export interface ChartSpec {
  unit: Unit;
  lines: LineSpec[];
  /** counts per bucket: drawn as steps, null drawn as 0 */
  counts?: boolean;
  height?: number;
  /** number of non-null points from the API; defaults to counting lines */
  points?: number;
  /** the events chart: counts drawn as markers in lanes (no steps, no partial bucket) */
  lanes?: boolean;
}

export function fmtUnit(unit: Unit, v: number | null | undefined): string {
  if (v == null) return '–';
  switch (unit) {
    case 'ms':
      return fmtMs(v);
    case 'bytes':
      return fmtBytes(v);
    case 'rpm':
      return fmtNum(v, v < 10 ? 2 : 1) + ' rpm';
    case 'load':
      return fmtNum(v, 2);
    case 'count':
      return fmtNum(v, 2);
    default:
      return fmtNum(v, 3);
  }
}

function fmtAxis(unit: Unit, v: number): string {
  switch (unit) {
    case 'ms':
      return v >= 1000 ? fmtCompact(v / 1000) + 's' : fmtCompact(v) + 'ms';
    case 'bytes': {
      const mb = v / MB;
      if (mb === 0) return '0';
      if (mb < 1) return fmtCompact(v / 1024) + 'KB';
      return mb >= 1024 ? fmtCompact(mb / 1024) + 'GB' : fmtCompact(mb) + 'MB';
    }
    default:
      return fmtCompact(v);
  }
}

/** isolated lists the indices of values whose neighbours are both missing: a line cannot show them. */
export function isolated(a: ArrayLike<number | null | undefined>, i0 = 0, i1 = a.length - 1): number[] {
  const out: number[] = [];
  for (let i = Math.max(0, i0); i <= i1 && i < a.length; i++) {
    if (a[i] != null && (i === 0 || a[i - 1] == null) && (i === a.length - 1 || a[i + 1] == null)) out.push(i);
  }
  return out;
}

export function countNonNull(arrs: Series[]): number {
  let n = 0;
  for (const a of arrs) for (const v of a) if (v != null) n++;
  return n;
}

/** fingerprint is a cheap checksum of what a chart shows (a test hook: did the data change?). */
function fingerprint(xs: number[], arrs: Series[]): string {
  let h = xs.length ? xs[0] + xs.length * 7919 : 0;
  for (const a of arrs) for (let i = 0; i < a.length; i++) if (a[i] != null) h = (h * 31 + Math.round((a[i] as number) * 1000) + i) % 2147483647;
  return String(h);
}

/** ChartGroup links the charts of one page: cursor sync, zoom sync, hidden series. */
export class ChartGroup {
  readonly key = 'dp-' + Math.random().toString(36).slice(2);
  readonly charts = new Set<uPlot>();
  /** per chart id: series the user showed (true) or hid (false) in the legend */
  readonly shown = new Map<string, Map<string, boolean>>();
  private syncing = false;

  syncZoom(src: uPlot): void {
    if (this.syncing) return;
    this.syncing = true;
    const { min, max } = src.scales.x;
    // Only charts whose range differs: a new chart's initial scale must not
    // redraw every other chart.
    for (const u of this.charts) {
      if (u === src || min == null || max == null) continue;
      if (u.scales.x.min !== min || u.scales.x.max !== max) u.setScale('x', { min, max });
    }
    this.syncing = false;
  }
}

/** fmtElapsed renders seconds as "25 s" or "4 min". */
function fmtElapsed(s: number): string {
  return s < 90 ? `${Math.max(0, Math.round(s))} s` : `${Math.round(s / 60)} min`;
}

function tooltipPlugin(unit: Unit, frame: Frame, raw: Series[], counts: boolean, open: number): uPlot.Plugin {
  let tip: HTMLDivElement;
  let over = false;
  return {
    hooks: {
      init: (u) => {
        tip = h('div', { class: 'u-tip', 'aria-hidden': 'true' });
        u.over.appendChild(tip);
        u.over.addEventListener('mouseenter', () => (over = true));
        u.over.addEventListener('mouseleave', () => {
          over = false;
          tip.style.display = 'none';
        });
      },
      setCursor: (u) => {
        const idx = u.cursor.idx;
        if (!over || idx == null || u.cursor.left == null || u.cursor.left < 0) {
          tip.style.display = 'none';
          return;
        }
        clear(tip);
        const t = frame.xs[idx] * 1000;
        tip.appendChild(h('div', { class: 'u-tip-time' }, fmtRange(t, t + frame.step * 1000, frame.utc)));
        if (idx === open && frame.now != null) {
          tip.appendChild(
            h('div', { class: 'u-tip-note' }, `still open: ${unit === 'rpm' ? 'per minute over' : 'counts of'} its first ${fmtElapsed(frame.now - frame.xs[idx])}`),
          );
        }
        let any = false;
        for (let i = 1; i < u.series.length; i++) {
          const s = u.series[i];
          const v = raw[i - 1]?.[idx] ?? (counts ? 0 : null);
          any = true;
          tip.appendChild(
            h(
              'div',
              { class: 'u-tip-row' + (s.show ? '' : ' off') },
              h('span', { class: 'u-tip-dot', style: `background:${String(s.stroke instanceof Function ? s.stroke(u, i) : s.stroke)}` }),
              h('span', { class: 'u-tip-label' }, String(s.label)),
              h('span', { class: 'u-tip-val' }, v == null ? 'no data' : fmtUnit(unit, v)),
            ),
          );
        }
        if (!any) tip.appendChild(h('div', null, 'no series'));
        tip.style.display = 'block';
        const w = u.over.clientWidth;
        const left = u.cursor.left;
        const top = u.cursor.top ?? 0;
        const tw = tip.offsetWidth;
        tip.style.left = (left + 12 + tw > w ? Math.max(0, left - tw - 12) : left + 12) + 'px';
        tip.style.top = Math.max(0, Math.min(top + 8, u.over.clientHeight - tip.offsetHeight)) + 'px';
      },
    },
  };
}

function markerPlugin(markers: Marker[]): uPlot.Plugin {
  return {
    hooks: {
      draw: (u) => {
        if (!markers.length) return;
        const ctx = u.ctx;
        const { left, top, width, height } = u.bbox;
        ctx.save();
        ctx.lineWidth = Math.max(1, devicePixelRatio);
        ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
        for (const m of markers) {
          const x = Math.round(u.valToPos(m.t, 'x', true));
          if (x < left || x > left + width) continue;
          ctx.strokeStyle = m.color;
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, top + height);
          ctx.stroke();
        }
        ctx.restore();
      },
    },
  };
}

/**
 * bucketSteps draws counts as steps: each bucket a flat segment across its
 * whole width (so the last bucket shows too), joined by risers. The bucket
 * at index skip (still open) is left to partialPlugin.
 */
function bucketSteps(step: number, skip: number): uPlot.Series.PathBuilder {
  return (u, si, i0, i1) => {
    const xs = u.data[0];
    const ys = u.data[si];
    const scale = u.series[si].scale ?? 'y';
    const p = new Path2D();
    let prevEnd: number | null = null;
    for (let i = Math.max(0, i0); i <= i1 && i < xs.length; i++) {
      const v = ys[i];
      if (v == null || i === skip) {
        prevEnd = null;
        continue;
      }
      const x0 = Math.round(u.valToPos(xs[i], 'x', true));
      const x1 = Math.round(u.valToPos(xs[i] + step, 'x', true));
      const y = Math.round(u.valToPos(v, scale, true));
      if (prevEnd === x0) p.lineTo(x0, y);
      else p.moveTo(x0, y);
      p.lineTo(x1, y);
      prevEnd = x1;
    }
    return { stroke: p, fill: null, clip: null, flags: 0 };
  };
}

/**
 * partialPlugin marks the still-open bucket of a count chart: a shaded band
 * behind it and its value drawn dashed, so a bucket only seconds old does
 * not read as a drop.
 */
function partialPlugin(frame: Frame, open: number): uPlot.Plugin {
  const clip = (u: uPlot) => {
    const { left, top, width, height } = u.bbox;
    const ctx = u.ctx;
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
  };
  return {
    hooks: {
      drawAxes: (u) => {
        const ctx = u.ctx;
        const x0 = u.valToPos(frame.xs[open], 'x', true);
        const x1 = u.valToPos(frame.xs[open] + frame.step, 'x', true);
        ctx.save();
        clip(u);
        ctx.fillStyle = palette().grid;
        ctx.globalAlpha = 0.6;
        ctx.fillRect(x0, u.bbox.top, x1 - x0, u.bbox.height);
        ctx.restore();
      },
      drawSeries: (u, si) => {
        const s = u.series[si];
        const v = u.data[si][open];
        if (!s.show || v == null) return;
        const ctx = u.ctx;
        const scale = s.scale ?? 'y';
        const x0 = Math.round(u.valToPos(frame.xs[open], 'x', true));
        const x1 = Math.round(u.valToPos(frame.xs[open] + frame.step, 'x', true));
        const y = Math.round(u.valToPos(v, scale, true));
        const prev = open > 0 ? u.data[si][open - 1] : null;
        const dpr = devicePixelRatio;
        ctx.save();
        clip(u);
        const stroke = typeof s.stroke === 'function' ? s.stroke(u, si) : s.stroke;
        ctx.strokeStyle = stroke as string;
        ctx.lineWidth = (s.width ?? 1) * dpr;
        ctx.setLineDash([3 * dpr, 3 * dpr]);
        ctx.beginPath();
        if (prev != null) {
          ctx.moveTo(x0, Math.round(u.valToPos(prev, scale, true)));
          ctx.lineTo(x0, y);
        } else ctx.moveTo(x0, y);
        ctx.lineTo(x1, y);
        ctx.stroke();
        ctx.restore();
      },
    },
  };
}

/** y-axis increments for bytes: powers of two (64 MB, 128 MB, … 1 GB, 2 GB), so a 512 MB quota is a tick */
const BYTE_INCRS = Array.from({ length: 41 }, (_, i) => 2 ** (i + 10));

/** y-axis increments for counts: whole numbers only */
const INT_INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7, 1e8, 1e9];

/** xAxis is the shared time axis: 24-hour labels in UTC or local time. */
function xAxis(frame: Frame): uPlot.Axis {
  const pal = palette();
  return {
    stroke: pal.axis,
    grid: { stroke: pal.grid, width: 1 },
    ticks: { stroke: pal.grid, width: 1 },
    values: (_u, splits, _ax, _space, incr) => axisTimes(splits, incr, frame.utc),
  };
}

/**
 * ChartBox is one chart's container. Its element carries the test hooks:
 * data-chart (the id), data-state (loading|ready|empty|error) and
 * data-points (non-null points drawn).
 */
export class ChartBox {
  readonly el: HTMLElement;
  readonly body: HTMLDivElement;
  readonly extra: HTMLDivElement;
  /** controls in the chart's header (e.g. the latency chart's log scale) */
  readonly actions: HTMLSpanElement = h('span', { class: 'chart-actions' });
  /** the uPlot instance while a chart is shown */
  u: uPlot | null = null;
  private ro: ResizeObserver | null = null;

  /** height: the plot height, so the loading placeholder takes the chart's room (no layout shift) */
  constructor(readonly id: string, title: string, subtitle = '', wide = false, private height = 200) {
    const tid = 'chart-' + id.replace(/[^a-zA-Z0-9_-]/g, '_');
    this.body = h('div', { class: 'chart-body' });
    this.extra = h('div', { class: 'chart-extra' });
    this.el = h(
      'section',
      { class: 'chart' + (wide ? ' wide' : ''), 'data-chart': id, 'data-state': 'loading', 'data-points': '0', 'aria-labelledby': tid },
      h('header', null, h('h3', { id: tid }, title), subtitle ? h('span', { class: 'sub' }, subtitle) : null, this.actions),
      this.body,
      this.extra,
    );
  }

  private destroyPlot(): void {
    this.ro?.disconnect();
    this.ro = null;
    this.u?.destroy();
    this.u = null;
  }

  private message(state: string, cls: string, ...nodes: (Node | string)[]): void {
    this.destroyPlot();
    clear(this.body);
    const style = state === 'loading' ? `min-height:${this.height + 58}px` : null;
    this.body.appendChild(h('div', { class: 'chart-msg ' + cls, role: state === 'error' ? 'alert' : null, style }, ...nodes));
    this.el.dataset.state = state;
    this.el.dataset.points = '0';
    this.el.dataset.buckets = '0';
    this.el.dataset.fingerprint = state;
    this.el.dataset.isolated = '0';
    this.el.dataset.open = '-1';
  }

  loading(): void {
    if (this.u) return; // keep the previous chart on screen while refreshing
    this.message('loading', 'loading', 'Loading…');
  }

  empty(...nodes: (Node | string)[]): void {
    this.message('empty', 'empty', ...nodes);
  }

  error(msg: string, retry?: () => void): void {
    this.message(
      'error',
      'error',
      h('span', null, 'Could not load: ' + msg),
      retry ? h('button', { type: 'button', class: 'btn small', onclick: retry }, 'Retry') : '',
    );
  }

  /** draw renders the chart and resolves after uPlot's first paint. */
  draw(group: ChartGroup, frame: Frame, spec: ChartSpec, extra?: Partial<uPlot.Options>): Promise<void> {
    const pal = palette();
    const raw = spec.lines.map((l) => l.values);
    const points = spec.points ?? countNonNull(raw);
    const shown = group.shown.get(this.id) ?? new Map<string, boolean>();
    group.shown.set(this.id, shown);
    const data: uPlot.AlignedData = [
      frame.xs,
      ...spec.lines.map((l) => (spec.counts ? l.values.map((v) => v ?? 0) : l.values)),
    ];
    const fp = fingerprint(frame.xs, raw);
    // Keep keyboard focus on the legend entry across a redraw (live refresh).
    const focusedRow = this.legendRows().indexOf(document.activeElement as HTMLElement);
    this.destroyPlot();
    clear(this.body);
    const unit = spec.unit;
    const counts = !!spec.counts;
    // Counts are steps: a bucket spans [start, start + step), its value
    // drawn flat across it; the still-open bucket is marked as partial.
    const steps = counts && !spec.lanes;
    const open = steps ? openIndex(frame) : -1;
    const lastX = frame.xs[frame.xs.length - 1];
    // The time axis runs to the end of the last bucket, so the last bucket
    // (of counts, drawn as steps) has its width like every other. Every
    // chart uses it, also those passing their own scales (zoom is synced).
    const xScale: uPlot.Scale = { time: true, range: (_u, min, max) => [min, max != null && max === lastX ? max + frame.step : max] as uPlot.Range.MinMax };
    let resolve!: () => void;
    const drawn = new Promise<void>((r) => (resolve = r));
    const opts: uPlot.Options = {
      width: Math.max(200, this.body.clientWidth || this.el.clientWidth || 600),
      height: spec.height ?? 200,
      tzDate: frame.utc ? (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC') : undefined,
      cursor: {
        sync: { key: group.key, setSeries: false },
        drag: { x: true, y: false, setScale: true },
        points: { size: 6 },
        // Over a step, the hovered bucket is the one under the pointer, not the nearest start.
        dataIdx: steps
          ? (u, _si, closest, xVal) => {
              const i = Math.floor((xVal - frame.xs[0]) / frame.step);
              return i >= 0 && i < frame.xs.length ? i : closest;
            }
          : undefined,
      },
      legend: { live: false },
      scales: {
        x: xScale,
        y: {
          range: (_u, _min, max) => {
            const m = max == null || !isFinite(max) || max <= 0 ? 1 : max * 1.08;
            return [0, m];
          },
        },
      },
      axes: [
        xAxis(frame),
        {
          stroke: pal.axis,
          grid: { stroke: pal.grid, width: 1 },
          ticks: { stroke: pal.grid, width: 1 },
          size: 62,
          incrs: counts ? INT_INCRS : unit === 'bytes' ? BYTE_INCRS : undefined,
          values: (u, splits) =>
            splits.map((v) => {
              if (v == null) return '';
              // On a log axis, label the powers of ten only.
              if (u.scales.y.distr === 3 && Math.abs(Math.log10(v) - Math.round(Math.log10(v))) > 1e-6) return '';
              return fmtAxis(unit, v);
            }),
        },
      ],
      series: [
        {},
        ...spec.lines.map(
          (l): uPlot.Series => ({
            label: l.label,
            stroke: l.color,
            width: l.width ?? 1.5,
            dash: l.dash,
            show: shown.get(l.label) ?? l.show ?? true,
            spanGaps: false,
            paths: steps ? bucketSteps(frame.step, open) : undefined,
            // A value with no neighbours makes no line: draw it as a dot.
            points: counts
              ? { show: false }
              : {
                  show: false,
                  size: Math.max(6, (l.width ?? 1.5) * 3.5),
                  width: 1,
                  fill: l.color,
                  filter: (u, si, show) => {
                    if (show) return null;
                    const idxs = isolated(u.data[si] as (number | null)[]);
                    return idxs.length ? idxs : null;
                  },
                },
            value: (_u, v) => fmtUnit(unit, v),
          }),
        ),
      ],
      plugins: [
        tooltipPlugin(unit, frame, raw, counts, open),
        markerPlugin(frame.markers),
        ...(open >= 0 ? [partialPlugin(frame, open)] : []),
      ],
      hooks: {
        draw: [
          (u) => {
            this.el.dataset.state = 'ready';
            this.el.dataset.points = String(points);
            this.el.dataset.buckets = String(frame.xs.length);
            this.el.dataset.fingerprint = fp;
            // Test hook: values drawn as lone dots in the series shown.
            let iso = 0;
            if (!counts) for (let i = 1; i < u.series.length; i++) if (u.series[i].show) iso += isolated(u.data[i] as (number | null)[]).length;
            this.el.dataset.isolated = String(iso);
            this.el.dataset.open = String(open);
            resolve();
          },
        ],
        setScale: [(u, key) => key === 'x' && group.syncZoom(u)],
        setSeries: [
          (u, i) => {
            if (i == null) return;
            const s = u.series[i];
            shown.set(String(s.label), !!s.show);
            this.legendRows()[i - 1]?.setAttribute('aria-pressed', String(!!s.show));
          },
        ],
      },
      ...extra,
    };
    opts.scales = { ...opts.scales, x: xScale };
    // A text alternative for the canvas: each series' latest value.
    const title = this.el.querySelector('h3')?.textContent ?? this.id;
    const latest = spec.lines
      .filter((l) => l.show !== false)
      .map((l) => {
        for (let i = l.values.length - 1; i >= 0; i--) if (l.values[i] != null) return `${l.label} ${fmtUnit(unit, l.values[i])}`;
        return `${l.label} no data`;
      });
    const u = new uPlot(opts, data, this.body);
    u.ctx.canvas.setAttribute('role', 'img');
    u.ctx.canvas.setAttribute('aria-label', `${title} chart, ${frame.xs.length} buckets. Latest: ${latest.join(', ')}.`);
    this.u = u;
    this.legendKeys(u, focusedRow);
    group.charts.add(u);
    const origDestroy = u.destroy.bind(u);
    u.destroy = () => {
      group.charts.delete(u);
      origDestroy();
    };
    let lastW = opts.width;
    this.ro = new ResizeObserver(() => {
      const w = this.body.clientWidth;
      if (w > 0 && Math.abs(w - lastW) > 2) {
        lastW = w;
        u.setSize({ width: w, height: opts.height });
      }
    });
    this.ro.observe(this.body);
    return drawn;
  }

  /** legendRows are the legend's entries, in series order (series 1 first). */
  private legendRows(): HTMLElement[] {
    return [...this.body.querySelectorAll<HTMLElement>('.u-legend tr.u-series')];
  }

  /**
   * legendKeys makes each legend entry a toggle button for the keyboard:
   * Tab to it, Enter or Space shows or hides its series (and is remembered
   * like a click).
   */
  private legendKeys(u: uPlot, focus: number): void {
    const rows = this.legendRows();
    rows.forEach((row, k) => {
      const i = k + 1;
      const s = u.series[i];
      if (!s) return;
      row.tabIndex = 0;
      row.setAttribute('role', 'button');
      row.setAttribute('aria-pressed', String(!!s.show));
      row.setAttribute('aria-label', `${String(s.label)}: show in chart`);
      row.addEventListener('keydown', (e) => {
        if (e.key !== 'Enter' && e.key !== ' ') return;
        e.preventDefault();
        u.setSeries(i, { show: !u.series[i].show });
      });
    });
    if (focus >= 0) rows[focus]?.focus();
  }

  destroy(): void {
    this.destroyPlot();
    this.el.remove();
  }
}

/** EventLane is one row of the events chart: a group of event kinds. */
export interface EventLane {
  label: string;
  short: string;
  color: string;
  counts: Series; // events per bucket
}

/**
 * drawEvents renders events as markers in lanes on the shared time axis;
 * clicking a marker calls onPick with the bucket index.
 */
export function drawEvents(
  box: ChartBox,
  group: ChartGroup,
  frame: Frame,
  lanes: EventLane[],
  points: number,
  onPick: (idx: number) => void,
): Promise<void> {
  const n = lanes.length;
  const spec: ChartSpec = {
    unit: 'count',
    height: 40 + n * 24,
    points,
    counts: true,
    lanes: true,
    lines: lanes.map((l) => ({ label: l.label, color: l.color, values: l.counts })),
  };
  const pal = palette();
  const laneData = lanes.map((l, i) => l.counts.map((v) => (v ? n - i : null)));
  const p = box.draw(group, frame, spec, {
    scales: { y: { range: [0.4, n + 0.6] } },
    axes: [
      xAxis(frame),
      {
        stroke: pal.axis,
        grid: { show: false },
        ticks: { show: false },
        size: 62,
        splits: () => lanes.map((_, i) => n - i),
        values: (_u, splits) => splits.map((v) => lanes[n - v]?.short ?? ''),
      },
    ],
    series: [
      {},
      ...lanes.map(
        (l): uPlot.Series => ({
          label: l.label,
          stroke: l.color,
          fill: l.color,
          paths: () => null,
          points: { show: true, size: 11, width: 2, stroke: l.color, fill: l.color },
          value: (_u, v) => String(v ?? ''),
        }),
      ),
    ],
  });
  // Replace the count data with lane positions (tooltips still show counts).
  const u = box.u;
  if (u) {
    u.setData([frame.xs, ...laneData] as uPlot.AlignedData, false);
    u.redraw();
    u.over.style.cursor = 'pointer';
    u.over.addEventListener('click', () => {
      const idx = u.cursor.idx;
      if (idx != null) onPick(idx);
    });
  }
  return p;
}
