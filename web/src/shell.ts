// Page-wide plumbing shared by the views: the readiness flag read by tests
// and benchmarks, client-side navigation, and the route parser.

const root = () => document.getElementById('root')!;

declare global {
  interface Window {
    /** performance.now() when the current view last became ready (for bench.mjs). */
    __readyAt?: number;
  }
}

let readyGen = 0;

/**
 * setReady flips #root[data-ready]: false while a view loads, and true once
 * everything is drawn — after the next frame has been painted, so the
 * benchmark's figure includes layout and paint.
 */
export function setReady(ready: boolean): void {
  const gen = ++readyGen;
  if (!ready) {
    root().dataset.ready = 'false';
    return;
  }
  const mark = () => {
    if (gen !== readyGen) return; // a reload started meanwhile
    root().dataset.ready = 'true';
    window.__readyAt = performance.now();
  };
  if (document.visibilityState === 'visible') requestAnimationFrame(() => setTimeout(mark, 0));
  else mark();
}

export interface Route {
  view: 'fleet' | 'app' | 'dyno' | 'notfound';
  app?: string;
  dyno?: string;
  q: URLSearchParams;
}

export function parseRoute(loc: Location = location): Route {
  const q = new URLSearchParams(loc.search);
  const parts = loc.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { view: 'fleet', q };
  if (parts[0] === 'apps' && parts.length === 2) return { view: 'app', app: parts[1], q };
  if (parts[0] === 'apps' && parts.length === 4 && parts[2] === 'dynos') return { view: 'dyno', app: parts[1], dyno: parts[3], q };
  return { view: 'notfound', q };
}

let navHandler: () => void = () => {};
export function setNavHandler(f: () => void): void {
  navHandler = f;
}

/** navigate changes the URL (push or replace) and renders the new route. */
export function navigate(url: string, replace = false): void {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  navHandler();
}

/** replaceQuery updates the URL's query without rendering again (e.g. a filter box). */
export function replaceQuery(q: URLSearchParams): void {
  const s = q.toString();
  history.replaceState(null, '', location.pathname + (s ? '?' + s : ''));
}

export function appURL(app: string, q?: URLSearchParams): string {
  const s = q?.toString();
  return '/apps/' + encodeURIComponent(app) + (s ? '?' + s : '');
}

export function dynoURL(app: string, dyno: string, q?: URLSearchParams): string {
  const s = q?.toString();
  return '/apps/' + encodeURIComponent(app) + '/dynos/' + encodeURIComponent(dyno) + (s ? '?' + s : '');
}

/** A View is a mounted page; update() handles a new route of the same page. */
export interface View {
  el: HTMLElement;
  /** returns false when the route needs a fresh view */
  update?(r: Route): boolean;
  destroy(): void;
}

/** drainCommand is the exact `heroku drains:add` line for an app on this server. */
export function drainCommand(app: string, user = 'USER', secret = 'SECRET'): string {
  return `heroku drains:add ${location.protocol}//${user}:${secret}@${location.host}/drains/${app} -a ${app}`;
}

export function drainCommandFromURL(app: string, drainURL: string): string {
  return `heroku drains:add ${drainURL} -a ${app}`;
}
