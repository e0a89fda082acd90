// The fleet overview: one row per app with throughput and a sparkline, p95,
// 5xx share, H errors, peak memory, the last deploy or restart, and a badge
// for apps in trouble. Sortable, filterable, keyboard-navigable; rows are
// built once into a DocumentFragment so 500 apps render in one go.

import { ApiError, type AppInfo, type CreatedApp, get, isAppToken, markAppToken, request } from './api';
import { h, svg, clear, copyButton } from './dom';
import { fmtAgo, fmtCompact, fmtMs, fmtNum, fmtPct } from './format';
import { type Route, type View, appURL, drainCommand, drainCommandFromURL, navigate, replaceQuery, setReady } from './shell';

interface Row {
  name: string;
  rpm: number | null;
  spark: (number | null)[];
  requests: number | null;
  p95: number | null;
  p95Rise: number | null; // ratio p95 / p95_prev
  pct5xx: number | null;
  h: number | null;
  memPct: number | null;
  lastT: number | null;
  reasons: string[];
  noData: boolean;
  tr?: HTMLTableRowElement;
}

type SortKey = 'name' | 'rpm' | 'p95' | 'e5xx' | 'h' | 'mem' | 'last' | 'trouble';

const COLS: { key: SortKey; label: string; num: boolean; title: string }[] = [
  { key: 'name', label: 'App', num: false, title: 'App name' },
  { key: 'rpm', label: 'Throughput', num: true, title: 'Requests per minute, mean of the last 5 complete minutes; sparkline: last hour' },
  { key: 'p95', label: 'p95', num: true, title: 'p95 response time over the last hour; ▲ when it rose more than 20% over the hour before' },
  { key: 'e5xx', label: '5xx', num: true, title: 'Share of requests answered with a 5xx status in the last hour' },
  { key: 'h', label: 'H errors', num: true, title: 'Router errors (H codes) in the last hour' },
  { key: 'mem', label: 'Memory', num: true, title: 'Peak memory of any dyno as a share of its quota, last hour' },
  { key: 'last', label: 'Last event', num: false, title: 'Most recent deploy, release or restart' },
  { key: 'trouble', label: 'Status', num: false, title: 'Why an app needs attention: rising p95, 5xx over 1%, R14, log loss' },
];

const num = (v: unknown): number | null => (typeof v === 'number' && isFinite(v) ? v : null);

export function toRow(a: AppInfo): Row {
  const s = a.summary ?? {};
  const spark = Array.isArray(s.rpm) ? s.rpm : [];
  // "Now": mean of the 5 minutes before the current, still-open minute.
  let rpm: number | null = null;
  if (spark.length >= 2) {
    const tail = spark.slice(Math.max(0, spark.length - 6), spark.length - 1);
    rpm = tail.reduce<number>((acc, v) => acc + (v ?? 0), 0) / tail.length;
  }
  const requests = num(s.requests);
  const p95 = num(s.p95_ms);
  const prev = num(s.p95_prev_ms);
  const p95Rise = p95 != null && prev != null && prev > 0 ? p95 / prev : null;
  const n5 = num(s.status_5xx);
  const pct5xx = requests ? ((n5 ?? 0) / requests) * 100 : null;
  const peak = num(s.memory_peak_bytes);
  const quota = num(s.memory_quota_bytes);
  const memPct = peak != null && quota ? (peak / quota) * 100 : null;
  const lastT = s.last_event?.time ? Date.parse(s.last_event.time) : null;
  const reasons: string[] = [];
  if (p95Rise != null && p95Rise > 1.2) reasons.push(`p95 ▲ ${Math.round((p95Rise - 1) * 100)}%`);
  if (pct5xx != null && pct5xx > 1) reasons.push(`5xx ${fmtPct(pct5xx)}`);
  const r14 = num(s.r14) ?? 0;
  if (r14 > 0) reasons.push(`R14 ×${r14}`);
  const loss = num(s.log_loss) ?? 0;
  if (loss > 0) reasons.push(`log loss ${fmtCompact(loss)}`);
  const noData = !requests && peak == null && !s.last_event;
  return {
    name: a.name,
    rpm,
    spark: spark.slice(0, -1), // the current minute is still filling up
    requests,
    p95,
    p95Rise,
    pct5xx,
    // Nothing arrived yet: no figures to show (not "0 errors").
    h: noData ? null : num(s.h_errors),
    memPct,
    lastT: lastT != null && isFinite(lastT) ? lastT : null,
    reasons,
    noData,
  };
}

function sortValue(r: Row, k: SortKey): number | string | null {
  switch (k) {
    case 'name':
      return r.name;
    case 'rpm':
      return r.rpm;
    case 'p95':
      return r.p95;
    case 'e5xx':
      return r.pct5xx;
    case 'h':
      return r.h;
    case 'mem':
      return r.memPct;
    case 'last':
      return r.lastT;
    case 'trouble':
      return r.reasons.length;
  }
}

function sparkline(vals: (number | null)[]): SVGElement {
  const W = 80;
  const H = 22;
  const el = svg('svg', { class: 'spark', width: W, height: H, viewBox: `0 0 ${W} ${H}`, 'aria-hidden': 'true' });
  if (vals.length < 2) return el;
  let max = 0;
  for (const v of vals) if (v != null && v > max) max = v;
  const dx = W / (vals.length - 1);
  let d = '';
  for (let i = 0; i < vals.length; i++) {
    const y = H - 1 - ((vals[i] ?? 0) / (max || 1)) * (H - 3);
    d += (i ? 'L' : 'M') + (i * dx).toFixed(1) + ',' + y.toFixed(1);
  }
  el.appendChild(svg('path', { d, fill: 'none', 'stroke-width': 1.5, 'vector-effect': 'non-scaling-stroke' }));
  return el;
}

function td(col: string, ...children: (Node | string)[]): HTMLTableCellElement {
  const c = document.createElement('td');
  c.dataset.col = col;
  c.setAttribute('role', 'cell');
  for (const ch of children) c.append(ch);
  return c;
}

function buildRow(r: Row, lastLabel: (r: Row) => [string, string]): HTMLTableRowElement {
  const tr = document.createElement('tr');
  tr.setAttribute('role', 'row');
  tr.tabIndex = 0;
  tr.dataset.app = r.name;
  if (r.reasons.length) tr.className = 'trouble';
  const link = h('a', { href: appURL(r.name), tabindex: '-1' }, r.name);
  tr.append(
    td('name', link),
    td('rpm', h('span', { class: 'rpm' }, r.rpm == null || r.noData ? '–' : fmtNum(r.rpm, r.rpm < 10 ? 1 : 0)), sparkline(r.noData ? [] : r.spark)),
    td(
      'p95',
      fmtMs(r.p95),
      r.p95Rise != null && r.p95Rise > 1.2
        ? h('span', { class: 'rise', title: `up ${Math.round((r.p95Rise - 1) * 100)}% on the hour before` }, ' ▲')
        : '',
    ),
    td('e5xx', r.pct5xx == null ? '–' : fmtPct(r.pct5xx)),
    td('h', r.h == null ? '–' : fmtNum(r.h)),
    td(
      'mem',
      r.memPct == null ? '–' : fmtPct(r.memPct),
      r.memPct == null
        ? ''
        : h('span', { class: 'membar', 'aria-hidden': 'true' }, h('span', { class: r.memPct >= 100 ? 'over' : r.memPct >= 85 ? 'high' : '', style: `width:${Math.min(100, r.memPct).toFixed(0)}%` })),
    ),
  );
  const [lbl, title] = lastLabel(r);
  const lastCell = td('last', lbl);
  if (title) lastCell.title = title;
  tr.append(lastCell);
  const st = td('trouble');
  if (r.reasons.length) for (const reason of r.reasons) st.append(h('span', { class: 'badge bad' }, reason));
  else if (r.noData) st.append(h('span', { class: 'badge muted' }, 'no data yet'));
  else st.append(h('span', { class: 'badge ok' }, 'OK'));
  tr.append(st);
  tr.setAttribute('aria-label', `${r.name}${r.reasons.length ? ', in trouble: ' + r.reasons.join(', ') : r.noData ? ', no data yet' : ''}`);
  return tr;
}

export class FleetView implements View {
  el: HTMLElement;
  private rows: Row[] = [];
  private apps = new Map<string, AppInfo>();
  private tbody = h('tbody', { role: 'rowgroup' });
  private ths = new Map<SortKey, HTMLTableCellElement>();
  private status = h('p', { class: 'muted', 'aria-live': 'polite', id: 'fleet-status' });
  private msg = h('div', { class: 'fleet-msg' });
  private filter: HTMLInputElement;
  private troubleOnly: HTMLInputElement;
  private live: HTMLInputElement;
  private sortKey: SortKey = 'name';
  private sortDir: 1 | -1 = 1;
  private timer = 0;
  private abort: AbortController | null = null;
  private destroyed = false;

  constructor(route: Route) {
    const q = route.q;
    const sk = q.get('sort') as SortKey | null;
    if (sk && COLS.some((c) => c.key === sk)) this.sortKey = sk;
    this.sortDir = q.get('dir') === 'desc' ? -1 : 1;
    this.filter = h('input', { type: 'search', id: 'fleet-filter', placeholder: 'Filter apps…', 'aria-label': 'Filter apps by name', autocomplete: 'off' });
    this.filter.value = q.get('q') ?? '';
    this.troubleOnly = h('input', { type: 'checkbox', id: 'fleet-trouble' });
    this.troubleOnly.checked = q.get('trouble') === '1';
    this.live = h('input', { type: 'checkbox', id: 'fleet-live' });
    this.live.checked = q.get('live') === '1';

    const headRow = h('tr', { role: 'row' });
    for (const c of COLS) {
      const btn = h('button', { type: 'button', class: 'sort', title: c.title }, c.label, h('span', { class: 'arrow', 'aria-hidden': 'true' }));
      btn.addEventListener('click', () => this.setSort(c.key));
      const th = h('th', { scope: 'col', role: 'columnheader', class: c.num ? 'num' : '', 'data-col': c.key }, btn);
      this.ths.set(c.key, th);
      headRow.appendChild(th);
    }
    const table = h('table', { class: 'fleet', role: 'table', 'aria-describedby': 'fleet-status' }, h('caption', { class: 'sr-only' }, 'Apps, last hour. Column headers sort.'), h('thead', { role: 'rowgroup' }, headRow), this.tbody);

    this.tbody.addEventListener('click', (e) => {
      const t = e.target as HTMLElement;
      const tr = t.closest('tr');
      if (!tr?.dataset.app) return;
      if (t.closest('a') && (e.metaKey || e.ctrlKey || e.shiftKey || (e as MouseEvent).button === 1)) return;
      e.preventDefault();
      navigate(appURL(tr.dataset.app));
    });
    this.tbody.addEventListener('keydown', (e) => {
      const tr = (e.target as HTMLElement).closest('tr');
      if (!tr?.dataset.app) return;
      if (e.key === 'Enter') {
        e.preventDefault();
        navigate(appURL(tr.dataset.app));
      } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        let n: Element | null = tr;
        do n = e.key === 'ArrowDown' ? n.nextElementSibling : n.previousElementSibling;
        while (n && (n as HTMLElement).hidden);
        (n as HTMLElement | null)?.focus();
      }
    });

    this.filter.addEventListener('input', () => {
      this.applyFilter();
      this.syncURL();
    });
    this.troubleOnly.addEventListener('change', () => {
      this.applyFilter();
      this.syncURL();
    });
    this.live.addEventListener('change', () => {
      this.syncURL();
      this.schedule();
    });

    this.el = h(
      'div',
      { class: 'page fleet-page' },
      h('div', { class: 'page-head' }, h('h1', null, 'Apps'), this.status),
      h(
        'div',
        { class: 'controls', role: 'group', 'aria-label': 'Fleet controls' },
        this.filter,
        h('label', { class: 'check' }, this.troubleOnly, 'Trouble only'),
        h('label', { class: 'check' }, this.live, 'Live'),
      ),
      this.msg,
      h('div', { class: 'table-wrap' }, table),
      // An app token can only be refused (403): offer the form to the admin token only.
      isAppToken() ? '' : this.createForm(),
    );
    this.load();
  }

  private syncURL(): void {
    const q = new URLSearchParams();
    if (this.filter.value) q.set('q', this.filter.value);
    if (this.troubleOnly.checked) q.set('trouble', '1');
    if (this.sortKey !== 'name' || this.sortDir !== 1) {
      q.set('sort', this.sortKey);
      q.set('dir', this.sortDir === 1 ? 'asc' : 'desc');
    }
    if (this.live.checked) q.set('live', '1');
    replaceQuery(q);
  }

  private schedule(): void {
    clearTimeout(this.timer);
    if (this.live.checked && !this.destroyed) this.timer = window.setTimeout(() => this.load(), 15000);
  }

  async load(): Promise<void> {
    setReady(false);
    this.abort?.abort();
    const ac = new AbortController();
    this.abort = ac;
    if (!this.rows.length) this.status.textContent = 'Loading apps…';
    try {
      const apps = await get<AppInfo[]>('/api/apps', undefined, ac.signal);
      if (this.destroyed || ac.signal.aborted) return;
      this.render(Array.isArray(apps) ? apps : []);
    } catch (e) {
      if ((e as Error).name === 'AbortError' || this.destroyed) return;
      clear(this.msg);
      this.msg.append(
        h('div', { class: 'notice error', role: 'alert' }, 'Could not load apps: ' + (e as Error).message + ' ', h('button', { type: 'button', class: 'btn small', onclick: () => this.load() }, 'Retry')),
      );
      this.status.textContent = '';
    }
    setReady(true);
    this.schedule();
  }

  private render(apps: AppInfo[]): void {
    const focused = (document.activeElement as HTMLElement | null)?.closest?.('tr')?.dataset.app;
    this.apps.clear();
    for (const a of apps) this.apps.set(a.name, a);
    this.rows = apps.map(toRow);
    const now = Date.now();
    const lastLabel = (r: Row): [string, string] => {
      const ev = this.apps.get(r.name)?.summary?.last_event;
      if (!ev || r.lastT == null) return ['–', ''];
      return [`${ev.kind} ${fmtAgo(r.lastT, now)}`, `${ev.time} ${ev.dyno || ev.process_type || ''} ${ev.detail}`];
    };
    const frag = document.createDocumentFragment();
    for (const r of this.rows) {
      r.tr = buildRow(r, lastLabel);
      frag.appendChild(r.tr);
    }
    clear(this.tbody);
    this.tbody.appendChild(frag);
    this.sortRows();
    this.applyFilter();
    clear(this.msg);
    if (!apps.length) {
      this.msg.append(
        h(
          'div',
          { class: 'notice' },
          h('p', null, 'No apps yet. Create one below (admin token), then add its drain:'),
          h('pre', null, h('code', null, drainCommand('APP'))),
        ),
      );
    }
    if (focused) (this.tbody.querySelector(`tr[data-app="${CSS.escape(focused)}"]`) as HTMLElement | null)?.focus();
  }

  private setSort(k: SortKey): void {
    if (this.sortKey === k) this.sortDir = this.sortDir === 1 ? -1 : 1;
    else {
      this.sortKey = k;
      this.sortDir = k === 'name' ? 1 : -1; // numbers: biggest first
    }
    this.sortRows();
    this.syncURL();
  }

  private sortRows(): void {
    const k = this.sortKey;
    const dir = this.sortDir;
    this.rows.sort((a, b) => {
      const va = sortValue(a, k);
      const vb = sortValue(b, k);
      if (va == null && vb == null) return a.name.localeCompare(b.name);
      if (va == null) return 1; // unknowns last, either direction
      if (vb == null) return -1;
      const c = typeof va === 'string' ? va.localeCompare(vb as string) : (va as number) - (vb as number);
      return c === 0 ? a.name.localeCompare(b.name) : c * dir;
    });
    const frag = document.createDocumentFragment();
    for (const r of this.rows) if (r.tr) frag.appendChild(r.tr);
    this.tbody.appendChild(frag);
    for (const [key, th] of this.ths) {
      if (key === k) th.setAttribute('aria-sort', dir === 1 ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    }
  }

  private applyFilter(): void {
    const f = this.filter.value.trim().toLowerCase();
    const tOnly = this.troubleOnly.checked;
    let shown = 0;
    let trouble = 0;
    for (const r of this.rows) {
      if (r.reasons.length) trouble++;
      const vis = (!f || r.name.toLowerCase().includes(f)) && (!tOnly || r.reasons.length > 0);
      if (r.tr && r.tr.hidden === vis) r.tr.hidden = !vis;
      if (vis) shown++;
    }
    const total = this.rows.length;
    this.status.textContent =
      `${total} app${total === 1 ? '' : 's'} · ${trouble} in trouble` + (shown !== total ? ` · ${shown} shown` : '') + ' · last hour';
    const none = this.el?.querySelector('.no-match');
    if (total && !shown) {
      if (!none) this.msg.append(h('p', { class: 'no-match muted' }, tOnly && !f ? 'No app is in trouble right now.' : 'No app matches the filter.'));
    } else none?.remove();
  }

  private createForm(): HTMLElement {
    // The server's rule: a lowercase letter, then lowercase letters, digits
    // and dashes, not ending with a dash, 1–63 characters. (Browsers compile
    // pattern with the v flag, where a literal '-' in a class must be escaped.)
    const name = h('input', {
      type: 'text',
      id: 'new-app',
      required: true,
      pattern: '[a-z]([a-z0-9\\-]{0,61}[a-z0-9])?',
      maxlength: 63,
      title: 'A lowercase letter first, then lowercase letters, digits and dashes, not ending with a dash (1\u201363 characters)',
      placeholder: 'my-app',
      autocomplete: 'off',
      'aria-describedby': 'new-app-help',
    });
    const out = h('div', { class: 'create-out', 'aria-live': 'polite' });
    const form = h(
      'form',
      { class: 'create' },
      h('label', { for: 'new-app' }, 'App name'),
      name,
      h('button', { type: 'submit', class: 'btn' }, 'Create'),
      h('p', { id: 'new-app-help', class: 'muted' }, 'As the Heroku app is named: a lowercase letter first, then lowercase letters, digits and dashes, not ending with a dash. Needs the admin token.'),
    );
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clear(out);
      try {
        const c = await request<CreatedApp>('POST', '/api/apps', { body: { name: name.value.trim() } });
        const cmd = drainCommandFromURL(c.name, c.drain_url);
        out.append(
          h('div', { class: 'notice ok' },
            h('p', null, h('strong', null, `Created ${c.name}.`), ' Add the drain to the Heroku app (the credentials are shown only now):'),
            h('pre', null, h('code', null, cmd)), copyButton(cmd, 'Copy command'),
            c.api_token ? h('p', null, 'Read-only API token for this app: ', h('code', { class: 'token' }, c.api_token), ' ', copyButton(c.api_token, 'Copy token')) : '',
          ),
        );
        name.value = '';
        this.load();
      } catch (err) {
        const st = err instanceof ApiError ? err.status : 0;
        if (st === 403) markAppToken();
        out.append(
          h('div', { class: 'notice error', role: 'alert' },
            st === 403 ? 'Only the admin token can create apps.' : `Could not create the app: ${(err as Error).message}`),
        );
      }
    });
    return h('details', { class: 'create-app' }, h('summary', null, 'Add an app'), form, out);
  }

  destroy(): void {
    this.destroyed = true;
    clearTimeout(this.timer);
    this.abort?.abort();
  }
}
