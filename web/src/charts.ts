// Chart boxes around uPlot: loading/empty/error states, the test hooks
// (data-chart, data-state, data-points), hover tooltips, a crosshair and
// zoom synced across every chart of a page, legends that toggle series (and
// remember it across refreshes), and deploy/crash marker lines.

import uPlot from 'uplot';
import type { Series } from './api';
import { clear, h } from './dom';
import { axisTimes, fmtBytes, fmtCompact, fmtMs, fmtNum, fmtTime } from './format';
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
}

export interface ChartSpec {
  unit: Unit;
  lines: LineSpec[];
  /** counts per bucket: drawn as steps, null drawn as 0 */
  counts?: boolean;
  height?: number;
  /** number of non-null points from the API; defaults to counting lines */
  points?: number;
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
      const mb = v / 1048576;
      if (mb === 0) return '0';
      return mb >= 1024 ? fmtCompact(mb / 1024) + 'GB' : fmtCompact(mb) + 'MB';
    }
    default:
      return fmtCompact(v);
  }
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

function tooltipPlugin(unit: Unit, frame: Frame, raw: Series[], counts: boolean): uPlot.Plugin {
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
        tip.appendChild(
          h('div', { class: 'u-tip-time' }, fmtTime(t, frame.utc) + (frame.step > 60 ? ' +' + frame.step / 60 + 'm' : '')),
        );
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

const stepped = uPlot.paths.stepped!({ align: 1 });

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
    this.destroyPlot();
    clear(this.body);
    const unit = spec.unit;
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
      },
      legend: { live: false },
      scales: {
        x: { time: true },
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
          incrs: spec.counts ? INT_INCRS : undefined,
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
            paths: spec.counts ? stepped : undefined,
            points: { show: false },
            value: (_u, v) => fmtUnit(unit, v),
          }),
        ),
      ],
      plugins: [tooltipPlugin(unit, frame, raw, !!spec.counts), markerPlugin(frame.markers)],
      hooks: {
        draw: [
          () => {
            this.el.dataset.state = 'ready';
            this.el.dataset.points = String(points);
            this.el.dataset.buckets = String(frame.xs.length);
            this.el.dataset.fingerprint = fp;
            resolve();
          },
        ],
        setScale: [(u, key) => key === 'x' && group.syncZoom(u)],
        setSeries: [
          (u, i) => {
            if (i == null) return;
            const s = u.series[i];
            shown.set(String(s.label), !!s.show);
          },
        ],
      },
      ...extra,
    };
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
    lines: lanes.map((l) => ({ label: l.label, color: l.color, values: l.counts })),
  };
  const pal = palette();
  const laneData = lanes.map((l, i) => l.counts.map((v) => (v ? n - i : null)));
  const p = box.draw(group, frame, spec, {
    scales: { x: { time: true }, y: { range: [0.4, n + 0.6] } },
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
