// The app page (/apps/{app}) and the dyno page (/apps/{app}/dynos/{dyno}):
// controls (process type, range, UTC/local, live), a summary strip for the
// range, and the charts. All data requests go out in parallel; each chart
// draws as soon as its answer arrives; #root[data-ready] turns true once the
// last one has been drawn.

import {
  type AppEvent,
  type CustomMetricInfo,
  type CustomSeriesResponse,
  type EventsResponse,
  type Formation,
  type LatencyResponse,
  type Series,
  type SeriesResponse,
  ApiError,
  appPath,
  get,
} from './api';
import uPlot from 'uplot';
import { ChartBox, ChartGroup, type EventLane, type Frame, type LineSpec, type Marker, countNonNull, drawEvents } from './charts';
import { clear, copyButton, h } from './dom';
import { fmtBytes, fmtMs, fmtNum, fmtPct, fmtRange, fmtTime } from './format';
import { MonitorsPanel } from './monitors';
import { type Route, type View, appURL, drainCommand, dynoURL, navigate, setReady } from './shell';
import { onThemeChange, palette } from './theme';

/** The time ranges and the step each uses (like Heroku: 1m up to 2h, 10m up to 72h, then 1h). */
export const RANGES: Record<string, { secs: number; step: string; stepSecs: number; label: string }> = {
  '1h': { secs: 3600, step: '1m', stepSecs: 60, label: 'Past hour' },
  '2h': { secs: 7200, step: '1m', stepSecs: 60, label: 'Past 2 hours' },
  '24h': { secs: 86400, step: '10m', stepSecs: 600, label: 'Past 24 hours' },
  '72h': { secs: 259200, step: '10m', stepSecs: 600, label: 'Past 72 hours' },
  '7d': { secs: 604800, step: '1h', stepSecs: 3600, label: 'Past 7 days' },
};
const DEFAULT_RANGE = '24h';
const REFRESH_MS = 15000;

const iso = (secs: number) => new Date(secs * 1000).toISOString().replace('.000Z', 'Z');

function stepSecs(step: string): number {
  const m = /^(\d+)([smh])$/.exec(step);
  if (!m) return 60;
  return Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
}

/** framesOf derives the bucket times from a series answer. */
function xsOf(r: SeriesResponse, fallback: number[]): number[] {
  const t0 = Date.parse(r.start_time) / 1000;
  const st = stepSecs(r.step);
  const first = Object.values(r.data ?? {})[0];
  const n = first ? first.length : Math.max(0, Math.ceil((Date.parse(r.end_time) / 1000 - t0) / st));
  if (!isFinite(t0) || (n === fallback.length && fallback[0] === t0)) return fallback;
  const xs = new Array<number>(n);
  for (let i = 0; i < n; i++) xs[i] = t0 + i * st;
  return xs;
}

function sum(a: Series | undefined): number {
  let s = 0;
  if (a) for (const v of a) if (v != null) s += v;
  return s;
}

function maxOf(a: Series | undefined): number | null {
  let m: number | null = null;
  if (a) for (const v of a) if (v != null && (m == null || v > m)) m = v;
  return m;
}

/** isNotFound: the API answers 404 for an app that does not exist (or that this token may not see). */
const isNotFound = (e: unknown) => e instanceof ApiError && e.status === 404;

/** tick yields to the event loop (a macrotask), so network callbacks are not starved by drawing. */
const tick = () => new Promise<void>((r) => setTimeout(r, 0));

const codeSort = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });

const EVENT_LANES: { label: string; short: string; kinds: string[]; color: (p: ReturnType<typeof palette>) => string }[] = [
  { label: 'Deploys & releases', short: 'deploy', kinds: ['deploy', 'release'], color: (p) => p.deploy },
  { label: 'Scaling & config', short: 'scale', kinds: ['scale', 'config'], color: (p) => p.cycle[5] },
  { label: 'Restarts', short: 'restart', kinds: ['restart', 'start', 'stop', 'exit', 'state'], color: (p) => p.cycle[1] },
  { label: 'Crashes', short: 'crash', kinds: ['crash'], color: (p) => p.crash },
  { label: 'Dyno errors', short: 'error', kinds: ['dyno_error'], color: (p) => p.cycle[6] },
  { label: 'Alerts & autoscaling', short: 'alert', kinds: ['alert', 'autoscale'], color: (p) => p.cycle[8] },
];

const PLATFORM_KINDS = new Set(['deploy', 'release', 'scale', 'config']);

interface State {
  app: string;
  dyno: string | null;
  type: string;
  range: string;
  utc: boolean;
  live: boolean;
  /** the window's end (Unix seconds) when the URL pins it (links in alert notifications); null: now */
  end: number | null;
}

function endOf(v: string | null): number | null {
  const t = v ? Date.parse(v) / 1000 : NaN;
  return isFinite(t) ? t : null;
}

function stateOf(r: Route): State {
  const dyno = r.view === 'dyno' ? r.dyno ?? null : null;
  const range = r.q.get('range') ?? DEFAULT_RANGE;
  return {
    app: r.app!,
    dyno,
    type: dyno ? dyno.split('.')[0] : r.q.get('type') || 'web',
    range: RANGES[range] ? range : DEFAULT_RANGE,
    utc: r.q.get('tz') !== 'local',
    live: r.q.get('live') === '1',
    end: endOf(r.q.get('end')),
  };
}

function queryOf(s: State): URLSearchParams {
  const q = new URLSearchParams();
  if (!s.dyno && s.type !== 'web') q.set('type', s.type);
  if (s.range !== DEFAULT_RANGE) q.set('range', s.range);
  if (!s.utc) q.set('tz', 'local');
  if (s.live) q.set('live', '1');
  else if (s.end != null) q.set('end', iso(s.end));
  return q;
}

function urlOf(s: State): string {
  return s.dyno ? dynoURL(s.app, s.dyno, queryOf(s)) : appURL(s.app, queryOf(s));
}

type Renderer = () => Promise<void>;

export class AppView implements View {
  el: HTMLElement;
  private s: State;
  private group = new ChartGroup();
  private boxes = new Map<string, ChartBox>();
  private renderers = new Map<string, Renderer>();
  private grid = h('div', { class: 'charts' });
  private customGrid = h('div', { class: 'charts small' });
  private customNote = h('p', { class: 'muted custom-note' });
  private customSection = h('section', { class: 'custom', 'aria-labelledby': 'custom-title', hidden: true }, h('h2', { id: 'custom-title' }, 'Custom metrics'), h('p', { class: 'muted' }, 'From count#, sample# and measure# lines in the app\u2019s output, all process types.'), this.customNote, this.customGrid);
  /** Custom metrics load once their section nears the viewport (an app may have dozens). */
  private customRevealed = false;
  private customPending = false;
  private coreDone = false;
  private io: IntersectionObserver | null = null;
  private cur: { base: Record<string, string>; frame: Frame; signal: AbortSignal; stale: () => boolean } | null = null;
  private summary = h('dl', { class: 'summary', 'aria-label': 'Summary for the selected range' });
  private notice = h('div', { class: 'app-notice' });
  private title = h('h1');
  private subtitle = h('p', { class: 'muted' });
  private typeSel = h('select', { id: 'ctl-type' });
  private dynoNav = h('nav', { class: 'dynos', 'aria-label': 'Dynos' });
  private rangeBtns = new Map<string, HTMLButtonElement>();
  private tzBtns = new Map<'utc' | 'local', HTMLButtonElement>();
  private liveBox = h('input', { type: 'checkbox', id: 'ctl-live' });
  private seq = 0;
  private abort: AbortController | null = null;
  private timer = 0;
  private formationFor = '';
  private unTheme: () => void;
  /** the app does not exist: the page shows only that */
  private missing = false;
  private monitors: MonitorsPanel | null = null;

  constructor(route: Route) {
    this.s = stateOf(route);
    const controls = h('div', { class: 'controls', role: 'group', 'aria-label': 'Chart controls' });
    if (!this.s.dyno) {
      this.typeSel.addEventListener('change', () => this.go({ type: this.typeSel.value }));
      controls.append(h('label', { class: 'field' }, h('span', null, 'Process type'), this.typeSel));
    }
    const rangeGroup = h('div', { class: 'seg', role: 'group', 'aria-label': 'Time range' });
    for (const k of Object.keys(RANGES)) {
      const b = h('button', { type: 'button', 'data-range': k, title: RANGES[k].label + ', ' + RANGES[k].step + ' steps' }, k);
      b.addEventListener('click', () => this.go({ range: k }));
      this.rangeBtns.set(k, b);
      rangeGroup.append(b);
    }
    const tzGroup = h('div', { class: 'seg', role: 'group', 'aria-label': 'Time zone' });
    for (const k of ['utc', 'local'] as const) {
      const b = h('button', { type: 'button', 'data-tz': k }, k === 'utc' ? 'UTC' : 'Local');
      b.addEventListener('click', () => this.go({ utc: k === 'utc' }));
      this.tzBtns.set(k, b);
      tzGroup.append(b);
    }
    this.liveBox.addEventListener('change', () => this.go({ live: this.liveBox.checked, end: null }, true));
    controls.append(
      rangeGroup,
      tzGroup,
      h('label', { class: 'check', title: `Refresh every ${REFRESH_MS / 1000} s` }, this.liveBox, 'Live'),
      h('button', { type: 'button', class: 'btn', id: 'ctl-refresh', onclick: () => this.load() }, 'Refresh'),
    );
    this.el = h(
      'div',
      { class: 'page app-page' },
      h('div', { class: 'page-head' }, this.title, this.subtitle),
      controls,
      this.dynoNav,
      this.notice,
      this.summary,
      this.grid,
      this.customSection,
    );
    if (!this.s.dyno) {
      this.monitors = new MonitorsPanel(this.s.app, () => this.s.type, () => this.s.utc);
      this.notice.before(this.monitors.banner);
      this.customSection.before(this.monitors.el);
    }
    this.io = new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && this.revealCustom(), { rootMargin: '200px 0px' });
    this.unTheme = onThemeChange(() => {
      for (const r of this.renderers.values()) r();
    });
    this.setupBoxes();
    this.load();
  }

  /** go applies a control change by pushing a new URL (so back/forward work). */
  private go(ch: Partial<State>, replace = false): void {
    navigate(urlOf({ ...this.s, ...ch }), replace);
  }

  update(r: Route): boolean {
    const n = stateOf(r);
    if (this.missing || n.app !== this.s.app || (n.dyno == null) !== (this.s.dyno == null)) return false;
    const typeChanged = n.type !== this.s.type || n.dyno !== this.s.dyno;
    this.s = n;
    if (typeChanged) this.setupBoxes();
    this.load();
    return true;
  }

  private box(id: string, title: string, sub = '', wide = false, parent: HTMLElement = this.grid, height = 200): ChartBox {
    const b = new ChartBox(id, title, sub, wide, height);
    this.boxes.set(id, b);
    parent.append(b.el);
    return b;
  }

  private setupBoxes(): void {
    for (const b of this.boxes.values()) b.destroy();
    this.boxes.clear();
    this.renderers.clear();
    clear(this.grid);
    clear(this.customGrid);
    this.customSection.hidden = !!this.s.dyno;
    this.customNote.textContent = this.customRevealed ? '' : 'Loading when scrolled into view…';
    this.box('events', 'Events', this.s.dyno ? `restarts, crashes and errors of ${this.s.dyno}, plus app-wide deploys, releases, scaling and config changes; click a marker for details` : 'deploys, releases, scaling, restarts, crashes, alerts; click a marker for details', true, this.grid, 180);
    if (!this.s.dyno) {
      this.box('latency', 'Response time', 'router service time, p50 · p95 · p99 · max (toggle in legend)');
      this.box('throughput', 'Throughput', 'requests per minute by status class');
      this.box('router-errors', 'Router errors', 'H codes, per step');
    }
    this.box('memory', 'Memory', 'total · RSS · swap, mean and max, with quota');
    this.box('load', 'Dyno load', 'load average, mean and max');
    if (!this.s.dyno) {
      this.box('dyno-errors', 'Dyno errors', 'R codes, per step');
      this.box('log-loss', 'Log loss', 'messages dropped by Logplex and lines drainpipe rejected, per step');
    }
  }

  private syncControls(): void {
    const s = this.s;
    this.title.textContent = s.dyno ? `${s.app} · ${s.dyno}` : s.app;
    const r = RANGES[s.range];
    const span = s.end != null ? `${r.label.replace(/^Past /, '').toLowerCase()} ending ${new Date(s.end * 1000).toISOString().slice(0, 16).replace('T', ' ')} UTC` : r.label.toLowerCase();
    this.subtitle.textContent = `${s.dyno ? 'dyno ' + s.dyno : s.type + ' dynos'} · ${span} in ${r.step} steps · ${s.utc ? 'UTC' : 'local time'}`;
    document.title = `${this.title.textContent} — drainpipe`;
    for (const [k, b] of this.rangeBtns) b.setAttribute('aria-pressed', String(k === s.range));
    for (const [k, b] of this.tzBtns) b.setAttribute('aria-pressed', String((k === 'utc') === s.utc));
    this.liveBox.checked = s.live;
  }

  destroy(): void {
    this.seq++;
    this.abort?.abort();
    clearTimeout(this.timer);
    this.unTheme();
    this.io?.disconnect();
    for (const b of this.boxes.values()) b.destroy();
  }

  async load(): Promise<void> {
    const seq = ++this.seq;
    clearTimeout(this.timer);
    this.abort?.abort();
    const ac = new AbortController();
    this.abort = ac;
    setReady(false);
    this.syncControls();
    const s = this.s;
    const r = RANGES[s.range];
    const now = s.end ?? Date.now() / 1000;
    const end = Math.ceil(now / r.stepSecs) * r.stepSecs;
    this.monitors?.load(ac.signal);
    const start = end - r.secs;
    const n = r.secs / r.stepSecs;
    const xs0 = Array.from({ length: n }, (_, i) => start + i * r.stepSecs);
    const frame: Frame = { xs: xs0, step: r.stepSecs, utc: s.utc, markers: [], now };
    const base = { start_time: iso(start), end_time: iso(end), step: r.step, process_type: s.type };
    const dynoQ: Record<string, string> = s.dyno ? { dyno: s.dyno } : {};
    const ap = appPath(s.app);
    const isWeb = s.type === 'web';
    const stale = () => seq !== this.seq;
    for (const b of this.boxes.values()) b.loading();

    const fetchSeries = <T extends SeriesResponse>(path: string, extra: Record<string, string> = {}) =>
      get<T>(ap + path, { ...base, ...extra }, ac.signal);

    // Requests go out in this order (a browser runs 6 at a time per host):
    // the custom-metric list first, as its series need a second round trip.
    const draws: Promise<unknown>[] = [];
    this.cur = { base, frame, signal: ac.signal, stale };
    this.coreDone = false;
    this.customPending = false;
    if (!s.dyno && this.customRevealed) draws.push(this.loadCustom(base, frame, ac.signal, stale));

    // Events next: the other charts draw their markers from them.
    const eventsP = fetchSeries<EventsResponse>('/events', s.dyno ? dynoQ : {}).then(
      (r) => r,
      (e) => e as Error,
    );
    const results: Record<string, SeriesResponse | null> = {};
    let failures = 0;
    let latencySummary: LatencyResponse['summary'] = null;

    const chart = (id: string, p: Promise<SeriesResponse>, render: (r: SeriesResponse, f: Frame) => Promise<void>) => {
      const box = this.boxes.get(id);
      if (!box) return;
      draws.push(
        Promise.all([p, eventsP]).then(
          async ([res]) => {
            await tick(); // let other answers' callbacks (new requests) run first
            if (stale()) return;
            results[id] = res;
            const f = { ...frame, xs: xsOf(res, frame.xs) };
            const rr = () => render(res, { ...f, markers: frame.markers });
            this.renderers.set(id, rr);
            return rr();
          },
          (e: Error) => {
            if (stale() || e.name === 'AbortError') return;
            if (isNotFound(e)) return this.notFound();
            failures++;
            results[id] = null;
            box.error(e.message, () => this.load());
          },
        ),
      );
    };

    // Markers from the events answer.
    draws.push(
      eventsP.then(async (res) => {
        await tick();
        if (stale()) return;
        const box = this.boxes.get('events')!;
        if (res instanceof Error) {
          if (res.name === 'AbortError') return;
          if (isNotFound(res)) return this.notFound();
          failures++;
          results.events = null;
          box.error(res.message, () => this.load());
          return;
        }
        results.events = res;
        const evs = (res.events ?? []).filter(
          (e) => s.dyno || PLATFORM_KINDS.has(e.kind) || !e.process_type || e.process_type === s.type,
        );
        evs.sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
        const pal = palette();
        const markers: Marker[] = [];
        for (const e of evs) {
          if (e.kind === 'deploy' || e.kind === 'release') markers.push({ t: Date.parse(e.time) / 1000, color: pal.deploy });
          else if (e.kind === 'crash') markers.push({ t: Date.parse(e.time) / 1000, color: pal.crash });
          else if (e.kind === 'alert' && / (firing|resolved)/.test(e.detail)) markers.push({ t: Date.parse(e.time) / 1000, color: pal.cycle[8] });
        }
        frame.markers = markers;
        this.lastEvents = evs;
        const f = { ...frame, xs: xsOf(res, frame.xs) };
        const rr = () => this.renderEvents(box, f, evs, res.data ?? {});
        this.renderers.set('events', rr);
        return rr();
      }),
    );

    chart('memory', fetchSeries(`/formation/${encodeURIComponent(s.type)}/metrics/memory`, dynoQ), (res, f) => this.renderMemory(f, res));
    chart('load', fetchSeries(`/formation/${encodeURIComponent(s.type)}/metrics/load`, dynoQ), (res, f) => this.renderLoad(f, res));
    if (!s.dyno) {
      if (isWeb) {
        chart('latency', fetchSeries<LatencyResponse>('/router-metrics/latency'), (res, f) => {
          latencySummary = (res as LatencyResponse).summary ?? null;
          return this.renderLatency(f, res);
        });
        chart('throughput', fetchSeries('/router-metrics/status'), (res, f) => this.renderThroughput(f, res));
        chart('router-errors', fetchSeries('/router-metrics/errors'), (res, f) =>
          this.renderCodes('router-errors', f, res, 'No router errors in this range.'),
        );
      } else {
        const why = `No router metrics for ${s.type}: the Heroku router only sends requests to web dynos.`;
        for (const id of ['latency', 'throughput', 'router-errors']) this.boxes.get(id)?.empty(why);
      }
      chart('dyno-errors', fetchSeries(`/formation/${encodeURIComponent(s.type)}/metrics/errors`), (res, f) =>
        this.renderCodes('dyno-errors', f, res, 'No dyno errors in this range.'),
      );
      chart('log-loss', fetchSeries('/log-loss'), (res, f) => this.renderCodes('log-loss', f, res, 'No log loss in this range.'));
    }
    // Formation (process types and dynos): once per app and type.
    const formationP = this.formationFor === s.app + '/' + s.type ? Promise.resolve() : this.loadFormation(ac.signal);

    await Promise.all([...draws, formationP.catch(() => undefined)]);
    if (stale()) return;
    this.renderSummary(results, latencySummary, failures);
    this.coreDone = true;
    if (!this.customPending) setReady(true);
    // Watch for the custom-metrics section only once the core charts have
    // their final height (an observer fires at once for a visible section).
    if (!this.customRevealed && !s.dyno) this.io?.observe(this.customSection);
    if (s.live) this.timer = window.setTimeout(() => this.load(), REFRESH_MS);
  }

  /**
   * notFound replaces the page with one message when the API does not know
   * the app, instead of an error in every chart and a summary of zeros.
   */
  private notFound(): void {
    if (this.missing) return;
    this.missing = true;
    this.seq++;
    this.abort?.abort();
    clearTimeout(this.timer);
    this.io?.disconnect();
    for (const b of this.boxes.values()) b.destroy();
    this.boxes.clear();
    this.renderers.clear();
    for (const c of this.el.children) (c as HTMLElement).hidden = true;
    const app = this.s.app;
    document.title = `No app named ${app} — drainpipe`;
    this.el.append(
      h('div', { class: 'app-missing', id: 'app-missing', role: 'alert' },
        h('h1', null, 'No app named ', h('code', null, app)),
        h('p', { class: 'muted' }, 'It may have been deleted or misspelt, or this token may not see it (an app token sees its own app only).'),
        h('p', null, h('a', { href: '/' }, '\u2190 Back to all apps')),
      ),
    );
    setReady(true);
  }

  /** revealCustom loads the custom metrics the first time their section nears the viewport. */
  private revealCustom(): void {
    if (this.customRevealed || this.s.dyno || !this.cur) return;
    this.customRevealed = true;
    this.io?.disconnect();
    this.customNote.textContent = '';
    const { base, frame, signal, stale } = this.cur;
    this.customPending = true;
    setReady(false);
    this.loadCustom(base, frame, signal, stale).then(() => {
      if (stale()) return;
      this.customPending = false;
      if (this.coreDone) setReady(true);
    });
  }

  private async loadFormation(signal: AbortSignal): Promise<void> {
    const s = this.s;
    let f: Formation;
    try {
      f = await get<Formation>(appPath(s.app) + '/formation', undefined, signal);
    } catch {
      f = { process_types: [] };
    }
    if (s !== this.s) return;
    this.formationFor = s.app + '/' + s.type;
    const types = (f.process_types ?? []).slice();
    if (!types.some((t) => t.name === s.type)) types.push({ name: s.type, dynos: [] });
    if (!types.some((t) => t.name === 'web')) types.unshift({ name: 'web', dynos: [] });
    clear(this.typeSel);
    for (const t of types) {
      const o = h('option', { value: t.name }, `${t.name} (${(t.dynos ?? []).length} dyno${(t.dynos ?? []).length === 1 ? '' : 's'})`);
      o.selected = t.name === s.type;
      this.typeSel.append(o);
    }
    const dynos = (types.find((t) => t.name === s.type)?.dynos ?? []).slice().sort(codeSort);
    clear(this.dynoNav);
    if (dynos.length) {
      const q = queryOf({ ...s, dyno: null });
      q.delete('type');
      this.dynoNav.append(
        h('span', { class: 'muted' }, 'Dynos: '),
        ...(s.dyno ? [h('a', { href: appURL(s.app, queryOf({ ...s, dyno: null })) }, `all ${s.type}`)] : []),
        ...dynos.map((d) =>
          h('a', { href: dynoURL(s.app, d, q), 'aria-current': d === s.dyno ? 'page' : null, class: d === s.dyno ? 'current' : '' }, d),
        ),
      );
    }
  }

  private async loadCustom(base: Record<string, string>, frame: Frame, signal: AbortSignal, stale: () => boolean): Promise<void> {
    const ap = appPath(this.s.app);
    let list: CustomMetricInfo[];
    try {
      const r = await get<{ metrics: CustomMetricInfo[] | null }>(ap + '/custom-metrics', undefined, signal);
      list = (r.metrics ?? []).slice().sort((a, b) => a.name.localeCompare(b.name));
    } catch {
      list = [];
    }
    if (stale()) return;
    // A name logged with several kinds (count#hits and measure#hits) gets
    // one chart per kind.
    const seen = new Map<string, number>();
    for (const m of list) seen.set(m.name, (seen.get(m.name) ?? 0) + 1);
    const idOf = (m: CustomMetricInfo) => 'custom-' + m.name + ((seen.get(m.name) ?? 0) > 1 ? '.' + m.kind : '');
    const want = new Set(list.map(idOf));
    for (const [id, b] of this.boxes) if (id.startsWith('custom-') && !want.has(id)) (b.destroy(), this.boxes.delete(id));
    this.customNote.textContent = list.length ? '' : 'None yet: log count#, sample# or measure# lines (l2met style) and they appear here.';
    const params = { start_time: base.start_time, end_time: base.end_time, step: base.step };
    await Promise.all(
      list.map(async (m) => {
        const id = idOf(m);
        const box = this.boxes.get(id) ?? this.box(id, m.name, m.kind, false, this.customGrid, 150);
        box.loading();
        try {
          const res = await get<CustomSeriesResponse>(ap + '/custom-metrics/' + encodeURIComponent(m.name), { ...params, kind: m.kind }, signal);
          await tick();
          if (stale()) return;
          const f = { ...frame, xs: xsOf(res, frame.xs) };
          const rr = () => this.renderCustom(box, f, res, m.kind);
          this.renderers.set(id, rr);
          await rr();
        } catch (e) {
          if (!stale() && (e as Error).name !== 'AbortError') box.error((e as Error).message, () => this.load());
        }
      }),
    );
  }

  // ---- renderers -------------------------------------------------------

  private draw(id: string, f: Frame, lines: LineSpec[], unit: Parameters<ChartBox['draw']>[2]['unit'], empty: string, counts = false, height?: number, extra?: Parameters<ChartBox['draw']>[3]): Promise<void> {
    const box = this.boxes.get(id);
    if (!box) return Promise.resolve();
    const pts = countNonNull(lines.map((l) => l.values));
    if (pts === 0) {
      box.empty(...this.emptyNodes(empty));
      return Promise.resolve();
    }
    return box.draw(this.group, f, { unit, lines, counts, points: pts, height }, extra);
  }

  private emptyNodes(msg: string): (Node | string)[] {
    return [h('span', null, msg)];
  }

  private latencyLog = false;
  private lastEvents: AppEvent[] = [];

  private renderLatency(f: Frame, res: SeriesResponse): Promise<void> {
    const p = palette();
    const d = res.data ?? {};
    const box = this.boxes.get('latency');
    if (box && !box.actions.firstChild) {
      const cb = h('input', { type: 'checkbox', id: 'latency-log' });
      cb.checked = this.latencyLog;
      cb.addEventListener('change', () => {
        this.latencyLog = cb.checked;
        this.renderers.get('latency')?.();
      });
      box.actions.append(h('label', { class: 'check small', title: 'Logarithmic y axis: spikes no longer flatten the percentiles' }, cb, 'Log scale'));
    }
    const log = this.latencyLog;
    // A log axis cannot show 0: those points become gaps.
    const L = (k: string) => (log ? (d[k] ?? []).map((v) => (v != null && v > 0 ? v : null)) : d[k] ?? []);
    const extra = log
      ? { scales: { x: { time: true }, y: { distr: 3 as const, log: 10 as const, range: (_u: unknown, min: number | null, max: number | null) => uPlot.rangeLog(Math.max(0.1, min ?? 1), Math.max(1, max ?? 10), 10, true) as [number, number] } } }
      : undefined;
    return this.draw('latency', f, [
      { label: 'p50', values: L('latency.ms.p50'), color: p.p50 },
      { label: 'p95', values: L('latency.ms.p95'), color: p.p95, width: 2 },
      { label: 'p99', values: L('latency.ms.p99'), color: p.p99 },
      { label: 'max', values: L('latency.ms.max'), color: p.max, dash: [4, 3], width: 1, show: false },
      { label: 'connect p95', values: L('latency.connect.ms.p95'), color: p.connect, width: 1, show: false },
    ].filter((l) => l.values.length), 'ms', 'No requests in this range.', false, undefined, extra);
  }

  private renderThroughput(f: Frame, res: SeriesResponse): Promise<void> {
    const p = palette();
    const d = res.data ?? {};
    const n = f.xs.length;
    const stepMin = f.step / 60;
    // The still-open bucket is divided by the time it has had so far (at
    // least 15 s, so its first seconds do not blow up); the chart draws it
    // dashed as partial.
    const nowS = f.now ?? Date.now() / 1000;
    const minutesIn = (i: number) => Math.min(stepMin, Math.max(0.25, (nowS - f.xs[i]) / 60));
    const classes = ['2xx', '3xx', '4xx', '5xx'];
    const colors = [p.s2xx, p.s3xx, p.s4xx, p.s5xx];
    const out: Series[] = classes.map(() => new Array(n).fill(null));
    const any = new Array<boolean>(n).fill(false);
    for (const code in d) {
      const c = Number(code[0]) - 2;
      if (!(c >= 0 && c < 4)) continue; // 1xx and oddities are not charted
      const arr = d[code];
      for (let i = 0; i < n; i++) {
        const v = arr[i];
        if (v == null) continue;
        any[i] = true;
        out[c][i] = ((out[c][i] as number | null) ?? 0) + v / minutesIn(i);
      }
    }
    // A bucket with any requests shows 0 for the classes it lacks.
    for (const s of out) for (let i = 0; i < n; i++) if (any[i] && s[i] == null) s[i] = 0;
    const lines = classes
      .map((c, i) => ({ label: c, values: out[i], color: colors[i] }))
      .filter((l, i) => i === 0 || l.values.some((v) => v));
    const box = this.boxes.get('throughput');
    const pts = countNonNull(Object.values(d));
    if (!box) return Promise.resolve();
    if (pts === 0) {
      box.empty(...this.emptyNodes('No requests in this range.'));
      return Promise.resolve();
    }
    return box.draw(this.group, f, { unit: 'rpm', lines, counts: true, points: pts });
  }

  private renderCodes(id: string, f: Frame, res: SeriesResponse, empty: string): Promise<void> {
    const p = palette();
    const d = res.data ?? {};
    const keys = Object.keys(d).sort(codeSort);
    const lines = keys.map((k, i) => ({ label: k, values: d[k], color: p.cycle[i % p.cycle.length] }));
    return this.draw(id, f, lines, 'count', empty, true);
  }

  private renderMemory(f: Frame, res: SeriesResponse): Promise<void> {
    const p = palette();
    const d = res.data ?? {};
    const lines: LineSpec[] = [];
    const kinds: [string, string, string, boolean][] = [
      ['total', 'total', p.cycle[0], true],
      ['rss', 'RSS', p.cycle[3], true],
      ['swap', 'swap', p.cycle[1], true],
      ['cache', 'cache', p.cycle[9], false],
    ];
    for (const [k, label, color, show] of kinds) {
      if (d[`memory.${k}.bytes.mean`]) lines.push({ label: `${label} mean`, values: d[`memory.${k}.bytes.mean`], color, show });
      if (d[`memory.${k}.bytes.max`]) lines.push({ label: `${label} max`, values: d[`memory.${k}.bytes.max`], color, dash: [4, 3], width: 1, show });
    }
    if (d['memory.quota.bytes.max']) lines.push({ label: 'quota', values: d['memory.quota.bytes.max'], color: p.quota, dash: [8, 4], width: 1 });
    return this.draw('memory', f, lines, 'bytes', 'No runtime metrics in this range (enable log-runtime-metrics on the app).');
  }

  private renderLoad(f: Frame, res: SeriesResponse): Promise<void> {
    const p = palette();
    const d = res.data ?? {};
    const lines: LineSpec[] = [];
    const avgs: [string, string, boolean][] = [
      ['1m', p.cycle[0], true],
      ['5m', p.cycle[4], false],
      ['15m', p.cycle[5], false],
    ];
    for (const [w, color, show] of avgs) {
      if (d[`load.avg.${w}.mean`]) lines.push({ label: `${w} mean`, values: d[`load.avg.${w}.mean`], color, show });
      if (d[`load.avg.${w}.max`]) lines.push({ label: `${w} max`, values: d[`load.avg.${w}.max`], color, dash: [4, 3], width: 1, show });
    }
    return this.draw('load', f, lines, 'load', 'No runtime metrics in this range (enable log-runtime-metrics on the app).');
  }

  private renderCustom(box: ChartBox, f: Frame, res: CustomSeriesResponse, kind: string): Promise<void> {
    const p = palette();
    const d = res.data ?? {};
    const k = res.kind ?? kind;
    const plan: [string, boolean][] =
      k === 'count'
        ? [['sum', true]]
        : k === 'sample'
          ? [['last', true], ['mean', true], ['max', true]]
          : [['p50', true], ['p95', true], ['p99', true], ['max', true], ['mean', false], ['min', false]];
    const colors = [p.p50, p.p95, p.p99, p.max, p.cycle[0], p.cycle[5]];
    const lines = plan
      .filter(([key]) => d[key])
      .map(([key, show], i) => ({ label: key, values: d[key], color: k === 'sample' || k === 'count' ? p.cycle[i] : colors[i], show }));
    const pts = countNonNull(Object.values(d));
    if (pts === 0) {
      box.empty('No values in this range.');
      return Promise.resolve();
    }
    return box.draw(this.group, f, { unit: 'num', lines, counts: k === 'count', points: pts, height: 150 });
  }

  private renderEvents(box: ChartBox, f: Frame, evs: AppEvent[], data: Record<string, Series>): Promise<void> {
    const p = palette();
    const n = f.xs.length;
    const t0 = f.xs[0];
    const idxOf = (e: AppEvent) => Math.floor((Date.parse(e.time) / 1000 - t0) / f.step);
    // The alerts lane is drawn only for apps that have alert or autoscale events in range.
    const hasAlerts = evs.some((e) => e.kind === 'alert' || e.kind === 'autoscale') || 'alert' in data || 'autoscale' in data;
    const defs = EVENT_LANES.filter((l) => l.short !== 'alert' || hasAlerts);
    const lanes: EventLane[] = defs.map((l) => ({ label: l.label, short: l.short, color: l.color(p), counts: new Array(n).fill(null) }));
    const add = (kind: string, i: number, k: number) => {
      const li = defs.findIndex((l) => l.kinds.includes(kind));
      if (i < 0 || i >= n || li < 0 || !k) return;
      const c = lanes[li].counts;
      c[i] = ((c[i] as number | null) ?? 0) + k;
    };
    // Counts per kind come from the answer's series (complete even when the
    // event list is capped); the list is the fallback and gives the details.
    if (Object.keys(data).length) {
      for (const kind in data) data[kind].forEach((v, i) => v && add(kind, i, v));
    } else {
      for (const e of evs) add(e.kind, idxOf(e), 1);
    }
    const points = countNonNull(lanes.map((l) => l.counts));
    clear(box.extra);
    if (points === 0) {
      box.empty(this.s.dyno ? 'No events for this dyno in this range.' : 'No deploys, restarts or other events in this range.');
      return Promise.resolve();
    }
    const detail = h('div', { class: 'event-detail', 'aria-live': 'polite' });
    const list = this.eventTable(evs.slice(-500).reverse(), f.utc);
    box.extra.append(
      detail,
      h('details', { class: 'event-list' }, h('summary', null, `All events in range (${evs.length}${evs.length > 500 ? ', latest 500 listed' : ''})`), list),
    );
    return drawEvents(box, this.group, f, lanes, points, (idx) => {
      const a = f.xs[idx];
      const inBucket = evs.filter((e) => idxOf(e) === idx);
      clear(detail);
      if (!inBucket.length) return;
      detail.append(
        h('div', { class: 'event-detail-head' },
          h('strong', null, `${inBucket.length} event${inBucket.length === 1 ? '' : 's'}, ${fmtRange(a * 1000, (a + f.step) * 1000, f.utc)}`),
          h('button', { type: 'button', class: 'btn small', 'aria-label': 'Close event details', onclick: () => clear(detail) }, '×'),
        ),
        this.eventTable(inBucket, f.utc),
      );
    });
  }

  private eventTable(evs: AppEvent[], utc: boolean): HTMLElement {
    const tb = h('tbody');
    const frag = document.createDocumentFragment();
    for (const e of evs) {
      const dyno = e.dyno || '';
      frag.append(
        h('tr', null,
          h('td', { class: 'nowrap' }, fmtTime(Date.parse(e.time), utc, true)),
          h('td', null, h('span', { class: 'kind kind-' + e.kind }, e.kind.replace('_', ' '))),
          h('td', null, dyno ? h('a', { href: dynoURL(this.s.app, dyno) }, dyno) : e.process_type || ''),
          h('td', null, e.code ?? ''),
          h('td', { class: 'detail' }, e.detail),
        ),
      );
    }
    tb.append(frag);
    return h('div', { class: 'table-wrap' }, h('table', { class: 'events' }, h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Time'), h('th', { scope: 'col' }, 'Kind'), h('th', { scope: 'col' }, 'Dyno'), h('th', { scope: 'col' }, 'Code'), h('th', { scope: 'col' }, 'Detail'))), tb));
  }

  private renderSummary(res: Record<string, SeriesResponse | null>, lat: LatencyResponse['summary'], failures: number): void {
    const s = this.s;
    clear(this.summary);
    const stat = (key: string, label: string, value: string | (Node | string)[], title = '', bad = false) =>
      this.summary.append(h('div', { class: 'stat' + (bad ? ' bad' : ''), 'data-stat': key, title }, h('dt', null, label), h('dd', null, ...(typeof value === 'string' ? [value] : value))));
    // A figure whose request failed shows "–", never a made-up 0.
    const failed = (id: string) => res[id] === null;
    const data = (id: string) => res[id]?.data ?? {};
    const total = (id: string) => Object.values(data(id)).reduce((a, v) => a + sum(v), 0);
    const count = (id: string, fmt = fmtNum) => (failed(id) ? '–' : fmt(total(id)));
    if (!s.dyno && s.type === 'web') {
      let all = 0;
      let n5 = 0;
      for (const [code, arr] of Object.entries(data('throughput'))) {
        const c = sum(arr);
        all += c;
        if (code.startsWith('5')) n5 += c;
      }
      const req = lat?.requests ?? (failed('throughput') ? null : all);
      stat('requests', 'Requests', fmtNum(req));
      stat('p50', 'p50', fmtMs(lat?.p50), 'over the whole range, from merged distributions');
      stat('p95', 'p95', fmtMs(lat?.p95), 'over the whole range, from merged distributions');
      stat('p99', 'p99', fmtMs(lat?.p99), 'over the whole range, from merged distributions');
      const pct = !failed('throughput') && all ? (n5 / all) * 100 : null;
      stat('5xx', '5xx', pct == null ? '–' : fmtPct(pct), failed('throughput') ? 'could not load' : `${fmtNum(n5)} responses`, pct != null && pct > 1);
      stat('h-errors', 'H errors', count('router-errors'), '', !failed('router-errors') && total('router-errors') > 0);
    }
    const mem = data('memory');
    const peak = maxOf(mem['memory.total.bytes.max']);
    const quota = maxOf(mem['memory.quota.bytes.max']);
    const pctMem = peak != null && quota ? (peak / quota) * 100 : null;
    // The share of the quota goes on its own line, so the tile stays narrow on a phone.
    stat(
      'memory',
      'Peak memory',
      peak == null ? '–' : [fmtBytes(peak), ...(pctMem != null ? [h('span', { class: 'stat-sub' }, `${fmtPct(pctMem)} of ${fmtBytes(quota)}`)] : [])],
      quota ? `quota ${fmtBytes(quota)}` : '',
      pctMem != null && pctMem >= 100,
    );
    const ld = maxOf(data('load')['load.avg.1m.max']);
    stat('load', 'Max load (1m)', ld == null ? '–' : fmtNum(ld, 2));
    if (s.dyno) {
      // From the per-kind counts (complete even when the event list is
      // capped). A crash is not a restart: each has its own figure.
      const ev = data('events');
      const mine = this.lastEvents.filter((e) => e.dyno === s.dyno);
      const kindCount = (kind: string) => (ev[kind] ? sum(ev[kind]) : mine.filter((e) => e.kind === kind).length);
      const restarts = kindCount('restart');
      const crashes = kindCount('crash');
      const rerr = kindCount('dyno_error');
      const evFailed = failed('events');
      stat('restarts', 'Restarts', evFailed ? '–' : fmtNum(restarts), 'restart events ("Restarting") of this dyno in the range; crashes are counted apart');
      stat('crashes', 'Crashes', evFailed ? '–' : fmtNum(crashes), '', !evFailed && crashes > 0);
      stat('r-errors', 'R errors', evFailed ? '–' : fmtNum(rerr), '', !evFailed && rerr > 0);
    }
    if (!s.dyno) {
      stat('r-errors', 'R errors', count('dyno-errors'), '', !failed('dyno-errors') && total('dyno-errors') > 0);
      stat('log-loss', 'Log loss', count('log-loss'), '', !failed('log-loss') && total('log-loss') > 0);
    }
    // Nothing at all in range, and nothing failed: tell how to add the drain.
    clear(this.notice);
    const states = [...this.boxes.values()].map((b) => b.el.dataset.state);
    if (failures === 0 && states.every((st) => st === 'empty')) {
      const cmd = drainCommand(s.app);
      this.notice.append(
        h('div', { class: 'notice' },
          h('p', null, h('strong', null, 'No data yet'), s.dyno ? ` for ${s.dyno} in this range.` : ` for ${s.app} (${s.type}) in this range. If the drain is not set up, add it:`),
          s.dyno ? '' : h('pre', null, h('code', null, cmd)),
          s.dyno ? '' : copyButton(cmd, 'Copy command'),
          s.dyno ? '' : h('p', { class: 'muted' }, 'USER and SECRET are the drain credentials shown when the app was created. For memory and load, also run heroku labs:enable log-runtime-metrics -a ' + s.app + '.'),
        ),
      );
    }
  }
}
