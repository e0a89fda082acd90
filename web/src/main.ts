// Entry point: the page shell (top bar, theme toggle, sign out), sign-in,
// and the History-API router that mounts the fleet, app and dyno views.

import { ApiError, type Me, clearToken, getToken, request, roleKnown, setRole, setStoreDownHandler, setToken, setUnauthorizedHandler } from './api';
import { AppView } from './appview';
import { clear, h } from './dom';
import { FleetView } from './fleet';
import { type Route, type View, appURL, navigate, parseRoute, setNavHandler, setReady } from './shell';
import { initTheme, onThemeChange, theme, toggleTheme } from './theme';

const root = document.getElementById('root')!;
let view: View | null = null;
let viewKind = '';

const crumbs = h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' });
const themeBtn = h('button', { type: 'button', class: 'btn ghost', id: 'theme-toggle' });
const signOutBtn = h('button', { type: 'button', class: 'btn ghost', id: 'sign-out' }, 'Sign out');
const main = h('main', { id: 'main', tabindex: '-1' });
// Shown while the API answers 503: the store (PostgreSQL in the scale-out
// mode) is down or failing over; drains are still taken and aggregated
// once it is back.
const storeBanner = h('div', { class: 'notice error store-banner', id: 'store-banner', role: 'status', hidden: true });

function syncThemeBtn(): void {
  const dark = theme() === 'dark';
  themeBtn.replaceChildren(h('span', { 'aria-hidden': 'true' }, dark ? '☀' : '☾'), h('span', { class: 'wide-only' }, dark ? ' Light' : ' Dark'));
  themeBtn.setAttribute('aria-label', dark ? 'Switch to light theme' : 'Switch to dark theme');
}

function renderCrumbs(r: Route): void {
  clear(crumbs);
  const items: [string, string | null][] = [['Apps', '/']];
  if (r.app) items.push([r.app, r.view === 'dyno' ? appURL(r.app) : null]);
  if (r.dyno) items.push([r.dyno, null]);
  items.forEach(([label, href], i) => {
    if (i) crumbs.append(h('span', { class: 'sep', 'aria-hidden': 'true' }, '/'));
    const last = i === items.length - 1;
    crumbs.append(last ? h('span', { 'aria-current': 'page' }, label) : h('a', { href: href! }, label));
  });
}

function signIn(message = ''): void {
  view?.destroy();
  view = null;
  viewKind = 'signin';
  document.title = 'Sign in — drainpipe';
  signOutBtn.hidden = true;
  clear(crumbs);
  const input = h('input', { type: 'password', id: 'token', name: 'token', required: true, autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'token-help signin-error' });
  const remember = h('input', { type: 'checkbox', id: 'remember' });
  const err = h('p', { id: 'signin-error', class: 'error-text', role: 'alert' }, message);
  const btn = h('button', { type: 'submit', class: 'btn primary' }, 'Sign in');
  const form = h(
    'form',
    { class: 'signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in to drainpipe'),
    h('label', { for: 'token' }, 'API token'),
    input,
    h('p', { id: 'token-help', class: 'muted' }, 'The admin token (DRAINPIPE_ADMIN_TOKEN) sees every app; an app token, shown when the app was created, sees that app only.'),
    h('label', { class: 'check' }, remember, 'Remember on this device'),
    btn,
    err,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    btn.disabled = true;
    err.textContent = '';
    try {
      const me = await request<Me>('GET', '/api/me', { token });
      setToken(token, remember.checked);
      setRole(me);
      // An app token sees one app: open it directly unless a deep link says otherwise.
      if (location.pathname === '/' && me.role === 'app' && me.app && !location.search) navigate(appURL(me.app), true);
      else render();
    } catch (ex) {
      const st = ex instanceof ApiError ? ex.status : 0;
      err.textContent =
        st === 401 || st === 403
          ? `That token was not accepted (${st}).`
          : `Could not sign in: ${(ex as Error).message}`;
      btn.disabled = false;
      input.select();
    }
  });
  clear(main);
  main.append(form);
  setReady(true);
  input.focus();
}

function render(): void {
  if (!getToken()) return signIn();
  if (!roleKnown()) {
    // A remembered token from an earlier session: ask what it may do first.
    request<Me>('GET', '/api/me')
      .then((me) => {
        setRole(me);
        render();
      })
      .catch((ex) => {
        if (!(ex instanceof ApiError && ex.status === 401)) {
          setRole({ role: 'admin' }); // unknown: show everything; a 403 corrects it
          render();
        }
      });
    return;
  }
  signOutBtn.hidden = false;
  const r = parseRoute();
  renderCrumbs(r);
  const kind = r.view;
  if (view && kind === viewKind && view.update?.(r)) return;
  view?.destroy();
  view = null;
  clear(main);
  viewKind = kind;
  switch (r.view) {
    case 'fleet':
      document.title = 'Apps — drainpipe';
      view = new FleetView(r);
      break;
    case 'app':
    case 'dyno':
      view = new AppView(r);
      break;
    default:
      document.title = 'Not found — drainpipe';
      main.append(h('div', { class: 'page' }, h('h1', null, 'Page not found'), h('p', null, h('a', { href: '/' }, 'Back to all apps'))));
      setReady(true);
      return;
  }
  main.append(view.el);
}

function start(): void {
  initTheme();
  syncThemeBtn();
  onThemeChange(syncThemeBtn);
  themeBtn.addEventListener('click', toggleTheme);
  signOutBtn.addEventListener('click', () => {
    clearToken();
    signIn();
  });
  setUnauthorizedHandler(() => {
    clearToken();
    signIn('Your token is no longer accepted (401). Sign in again.');
  });
  const header = h(
    'header',
    { class: 'topbar' },
    h('a', { href: '/', class: 'brand', 'aria-label': 'drainpipe, all apps' }, h('span', { class: 'logo', 'aria-hidden': 'true' }), 'drainpipe'),
    crumbs,
    h('span', { class: 'spacer' }),
    themeBtn,
    signOutBtn,
  );
  setStoreDownHandler((msg) => {
    if (msg === null) {
      storeBanner.hidden = true;
      return;
    }
    storeBanner.replaceChildren(
      h('strong', null, 'Metrics are unavailable right now. '),
      `${msg}. Drains are still being accepted; the charts catch up once the store is back.`,
    );
    storeBanner.hidden = false;
  });
  root.append(header, storeBanner, main);

  // Same-origin links navigate client-side.
  document.addEventListener('click', (e) => {
    const a = (e.target as HTMLElement).closest?.('a');
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    if (a.target || a.origin !== location.origin || a.hasAttribute('download')) return;
    e.preventDefault();
    if (a.pathname + a.search !== location.pathname + location.search) navigate(a.pathname + a.search);
  });
  let lastPath = location.pathname;
  const onNav = () => {
    render();
    if (location.pathname !== lastPath) window.scrollTo(0, 0);
    lastPath = location.pathname;
  };
  window.addEventListener('popstate', onNav);
  setNavHandler(onNav);
  render();
}

start();
