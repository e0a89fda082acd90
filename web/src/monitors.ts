// The app page's monitors panel (alerts and autoscaling, modelled on
// Heroku's threshold alerting) and the Platform API banner. It talks to
// /api/apps/{app}/monitors (list, create, edit, delete) and
// /api/apps/{app}/autoscaling.

import { ApiError, appPath, get, request } from './api';
import { clear, h } from './dom';

export interface Evaluation {
  status: 'ok' | 'pending' | 'firing' | 'resolved';
  since?: string;
  last_minute?: string;
  value: number;
  has_value: boolean;
}

export interface MonitorView {
  id: string;
  app: string;
  process_type: string;
  action_type: 'alert' | 'scale';
  name: string;
  code?: string;
  op: string;
  value: number;
  period: number;
  notification_period: number;
  is_active: boolean;
  min_quantity?: number;
  max_quantity?: number;
  evaluation?: Evaluation | null;
}

interface Decision {
  minute: string;
  from: number;
  to: number;
  reason: string;
  dry_run?: boolean;
}

export interface AutoscaleStatus {
  dry_run: boolean;
  platform_api: { url: string; available: boolean; unavailable_since?: string; last_error?: string; next_retry?: string };
  formations: { process_type: string; quantity: number | null; min_quantity: number; max_quantity: number; pending?: Decision | null; last_decision?: Decision | null }[];
}

const NAMES: Record<string, { label: string; unit: string; hint: string }> = {
  LATENCY: { label: 'Response time p95', unit: 'ms', hint: 'p95 of router service time, at least 50 ms' },
  ERROR_RATE: { label: 'Failed requests (5xx share)', unit: '%', hint: 'share of 5xx responses, e.g. 5 %' },
  MEMORY_QUOTA: { label: 'Memory vs quota', unit: '%', hint: 'peak memory as a share of the quota (any R14 counts too)' },
  ROUTER_ERRORS: { label: 'Router errors (H codes)', unit: '/min', hint: 'H-code errors per minute, of one code or all' },
  LOG_LOSS: { label: 'Log loss', unit: '/min', hint: 'log lines lost per minute' },
};

/** The value as a person enters it: shares in %, the rest as is. */
const isShare = (name: string) => name === 'ERROR_RATE' || name === 'MEMORY_QUOTA';
const shown = (name: string, v: number) => (isShare(name) ? +(v * 100).toFixed(4) : v);
const stored = (name: string, v: number) => (isShare(name) ? v / 100 : v);

function fmtThreshold(m: MonitorView): string {
  const op = m.op === 'GREATER_THAN' ? '>' : '≥';
  const u = NAMES[m.name]?.unit ?? '';
  return `${op} ${shown(m.name, m.value)}${u === 'ms' ? ' ms' : u}`;
}

function fmtWhen(iso: string | undefined, utc: boolean): string {
  if (!iso) return '';
  const d = new Date(iso);
  const o: Intl.DateTimeFormatOptions = { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hour12: false, timeZone: utc ? 'UTC' : undefined };
  return d.toLocaleString('en-GB', o) + (utc ? ' UTC' : '');
}

export class MonitorsPanel {
  el: HTMLElement;
  /** banner is placed by the page near its top. */
  banner = h('div', { class: 'platform-banner', role: 'status', 'aria-live': 'polite' });
  private list = h('div', { class: 'monitor-list' });
  private formBox = h('div', { class: 'monitor-form-box' });
  private msg = h('p', { class: 'error-text', role: 'alert', id: 'monitor-msg' });
  private monitors: MonitorView[] = [];
  private seq = 0;

  constructor(
    private app: string,
    private type: () => string,
    private utc: () => boolean,
  ) {
    const add = h('button', { type: 'button', class: 'btn', id: 'monitor-new' }, 'New monitor');
    add.addEventListener('click', () => this.openForm(null));
    this.el = h(
      'section',
      { class: 'monitors', id: 'monitors', 'aria-labelledby': 'monitors-title' },
      h('div', { class: 'monitors-head' }, h('h2', { id: 'monitors-title' }, 'Monitors'), add),
      h('p', { class: 'muted' }, 'Alerts and autoscaling on the minute stream: a monitor fires when its series crosses the threshold for the sensitivity period; scale monitors keep p95 under the value through the Heroku Platform API.'),
      this.msg,
      this.formBox,
      this.list,
    );
  }

  async load(signal?: AbortSignal): Promise<void> {
    const seq = ++this.seq;
    const ap = appPath(this.app);
    try {
      const [ms, as] = await Promise.all([
        get<MonitorView[]>(ap + '/monitors', undefined, signal),
        get<AutoscaleStatus>(ap + '/autoscaling', undefined, signal).catch(() => null),
      ]);
      if (seq !== this.seq) return;
      this.monitors = ms ?? [];
      this.renderList(as);
      this.renderBanner(as);
    } catch (e) {
      if ((e as Error).name === 'AbortError' || seq !== this.seq) return;
      clear(this.list);
      this.list.append(h('p', { class: 'error-text' }, `Monitors could not be loaded: ${(e as Error).message}`));
    }
  }

  private renderBanner(as: AutoscaleStatus | null): void {
    clear(this.banner);
    const p = as?.platform_api;
    if (!p || p.available) return;
    this.banner.append(
      h(
        'div',
        { class: 'notice error', id: 'platform-banner' },
        h('p', null, h('strong', null, `Platform API unavailable since ${fmtWhen(p.unavailable_since, this.utc())}.`), ' Autoscaling keeps its state and resumes by itself when the API answers again.'),
        p.last_error ? h('p', { class: 'muted' }, `Last error: ${p.last_error}`) : null,
      ),
    );
  }

  private renderList(as: AutoscaleStatus | null): void {
    clear(this.list);
    if (!this.monitors.length) {
      this.list.append(h('p', { class: 'muted', id: 'monitors-empty' }, 'No monitors yet.'));
      return;
    }
    const tb = h('tbody');
    for (const m of this.monitors) {
      const ev = m.evaluation;
      const status = !m.is_active ? 'inactive' : m.action_type === 'scale' ? 'autoscaling' : ev?.status ?? 'ok';
      const badge = h('span', { class: `badge ${status === 'firing' ? 'bad' : status === 'pending' ? 'warn' : status === 'inactive' ? 'muted' : 'ok'}` }, status);
      let detail = '';
      if (m.action_type === 'scale') {
        const f = as?.formations.find((x) => x.process_type === m.process_type);
        detail = `${m.min_quantity}–${m.max_quantity} dynos` + (f?.quantity != null ? `, now ${f.quantity}` : '') + (f?.pending ? `, wants ${f.pending.to}` : '') + (as?.dry_run ? ' (dry run)' : '');
      } else if (ev && (ev.status === 'firing' || ev.status === 'pending')) {
        detail = `since ${fmtWhen(ev.since, this.utc())}`;
      }
      const edit = h('button', { type: 'button', class: 'btn small', 'data-action': 'edit', 'aria-label': `Edit ${m.name} monitor of ${m.process_type}` }, 'Edit');
      edit.addEventListener('click', () => this.openForm(m));
      const del = h('button', { type: 'button', class: 'btn small', 'data-action': 'delete', 'aria-label': `Delete ${m.name} monitor of ${m.process_type}` }, 'Delete');
      del.addEventListener('click', () => this.remove(m, del));
      tb.append(
        h(
          'tr',
          { 'data-monitor': m.id, 'data-name': m.name },
          h('td', null, NAMES[m.name]?.label ?? m.name, m.code ? ` (${m.code})` : ''),
          h('td', null, m.process_type),
          h('td', null, m.action_type),
          h('td', { class: 'threshold' }, fmtThreshold(m)),
          h('td', null, `${m.period} min`),
          h('td', null, m.action_type === 'alert' ? `every ${m.notification_period} min` : '–'),
          h('td', { class: 'status' }, badge, detail ? h('span', { class: 'muted' }, ' ' + detail) : null),
          h('td', { class: 'nowrap' }, edit, ' ', del),
        ),
      );
    }
    const head = ['Monitor', 'Type', 'Action', 'Threshold', 'Sensitivity', 'Reminders', 'State', ''];
    this.list.append(
      h('div', { class: 'table-wrap' }, h('table', { class: 'monitors-table' }, h('thead', null, h('tr', null, ...head.map((t) => h('th', { scope: 'col' }, t)))), tb)),
    );
  }

  private async remove(m: MonitorView, btn: HTMLButtonElement): Promise<void> {
    if (!window.confirm(`Delete the ${m.name} monitor of ${m.process_type}?`)) return;
    btn.disabled = true;
    this.msg.textContent = '';
    try {
      await request('DELETE', `${appPath(this.app)}/monitors/${encodeURIComponent(m.id)}`);
      await this.load();
    } catch (e) {
      this.msg.textContent = `Could not delete: ${(e as Error).message}`;
      btn.disabled = false;
    }
  }

  private openForm(m: MonitorView | null): void {
    clear(this.formBox);
    this.msg.textContent = '';
    const sel = (id: string, opts: [string, string][], value: string) => {
      const s = h('select', { id, name: id });
      for (const [v, l] of opts) s.append(h('option', { value: v, selected: v === value }, l));
      return s;
    };
    const name = sel('mon-name', Object.entries(NAMES).map(([k, v]) => [k, v.label]), m?.name ?? 'LATENCY');
    const action = sel('mon-action', [['alert', 'Alert'], ['scale', 'Autoscale (LATENCY only)']], m?.action_type ?? 'alert');
    const ptype = h('input', { id: 'mon-type', name: 'mon-type', value: m?.process_type ?? this.type(), required: true, size: 10 });
    const value = h('input', { id: 'mon-value', name: 'mon-value', type: 'number', step: 'any', required: true, value: m ? String(shown(m.name, m.value)) : '' });
    const unit = h('span', { class: 'muted', id: 'mon-unit' });
    const code = h('input', { id: 'mon-code', name: 'mon-code', placeholder: 'all', size: 4, value: m?.code ?? '' });
    const period = sel('mon-period', [['1', '1 minute'], ['5', '5 minutes'], ['10', '10 minutes']], String(m?.period ?? 5));
    const notify = sel('mon-notify', [['5', 'every 5 minutes'], ['60', 'every hour'], ['1440', 'every day']], String(m?.notification_period ?? 60));
    const active = h('input', { id: 'mon-active', type: 'checkbox', checked: m ? m.is_active : true });
    const minQ = h('input', { id: 'mon-min', type: 'number', min: 1, max: 100, value: String(m?.min_quantity ?? 1), size: 4 });
    const maxQ = h('input', { id: 'mon-max', type: 'number', min: 1, max: 100, value: String(m?.max_quantity ?? 4), size: 4 });
    const codeField = h('label', { class: 'field' }, h('span', null, 'H code'), code);
    const scaleFields = h('span', { class: 'scale-fields' }, h('label', { class: 'field' }, h('span', null, 'Min dynos'), minQ), h('label', { class: 'field' }, h('span', null, 'Max dynos'), maxQ));
    const notifyField = h('label', { class: 'field' }, h('span', null, 'Reminders'), notify);
    const sync = () => {
      unit.textContent = `${NAMES[name.value].unit} — ${NAMES[name.value].hint}`;
      codeField.hidden = name.value !== 'ROUTER_ERRORS';
      scaleFields.hidden = action.value !== 'scale';
      notifyField.hidden = action.value === 'scale';
    };
    name.addEventListener('change', sync);
    action.addEventListener('change', sync);
    sync();
    const err = h('p', { class: 'error-text', role: 'alert', id: 'mon-error' });
    const save = h('button', { type: 'submit', class: 'btn primary', id: 'mon-save' }, m ? 'Save' : 'Create');
    const cancel = h('button', { type: 'button', class: 'btn', onclick: () => clear(this.formBox) }, 'Cancel');
    const form = h(
      'form',
      { class: 'monitor-form', 'aria-label': m ? 'Edit monitor' : 'New monitor' },
      h('label', { class: 'field' }, h('span', null, 'Action'), action),
      h('label', { class: 'field' }, h('span', null, 'Series'), name),
      h('label', { class: 'field' }, h('span', null, 'Process type'), ptype),
      codeField,
      h('label', { class: 'field' }, h('span', null, 'Threshold (at or above)'), value),
      unit,
      h('label', { class: 'field' }, h('span', null, 'Sensitivity'), period),
      notifyField,
      scaleFields,
      h('label', { class: 'check' }, active, 'Active'),
      h('div', { class: 'form-actions' }, save, ' ', cancel),
      err,
    );
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      err.textContent = '';
      const v = Number(value.value);
      const body: Record<string, unknown> = {
        action_type: action.value,
        name: name.value,
        process_type: ptype.value.trim(),
        value: stored(name.value, v),
        period: Number(period.value),
        is_active: active.checked,
      };
      if (action.value === 'alert') body.notification_period = Number(notify.value);
      if (name.value === 'ROUTER_ERRORS') body.code = code.value.trim();
      else if (m?.code) body.code = '';
      if (action.value === 'scale') {
        body.min_quantity = Number(minQ.value);
        body.max_quantity = Number(maxQ.value);
      }
      save.disabled = true;
      try {
        if (m) await request('PATCH', `${appPath(this.app)}/monitors/${encodeURIComponent(m.id)}`, { body });
        else await request('POST', `${appPath(this.app)}/monitors`, { body });
        clear(this.formBox);
        await this.load();
      } catch (ex) {
        err.textContent = ex instanceof ApiError ? `${ex.status === 409 ? 'Already exists' : 'Not saved'}: ${ex.message}` : String(ex);
        save.disabled = false;
      }
    });
    this.formBox.append(form);
    value.focus();
  }
}
