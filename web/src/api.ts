// The query API client (SPEC.md §3) and the token store. The token lives in
// sessionStorage (or localStorage when "remember" was ticked) and is sent as
// a Bearer header; it is never put in a URL.

export type Series = (number | null)[];

export interface SeriesResponse {
  start_time: string;
  end_time: string;
  step: string;
  data: Record<string, Series>;
}

export interface AppEvent {
  time: string;
  kind: string;
  process_type?: string;
  dyno?: string;
  code?: string;
  detail: string;
}

export interface EventsResponse extends SeriesResponse {
  events: AppEvent[] | null;
}

export interface LatencyResponse extends SeriesResponse {
  summary?: { requests?: number | null; p50?: number | null; p95?: number | null; p99?: number | null; max?: number | null } | null;
}

export interface CustomSeriesResponse extends SeriesResponse {
  kind?: string;
}

export interface AppSummary {
  requests?: number | null;
  rpm?: Series | null;
  p95_ms?: number | null;
  p95_prev_ms?: number | null;
  status_5xx?: number | null;
  h_errors?: number | null;
  r_errors?: number | null;
  r14?: number | null;
  log_loss?: number | null;
  memory_peak_bytes?: number | null;
  memory_quota_bytes?: number | null;
  last_event?: AppEvent | null;
}

export interface AppInfo {
  name: string;
  created_at?: string;
  summary?: AppSummary | null;
}

export interface Formation {
  process_types: { name: string; dynos: string[] | null }[] | null;
}

export interface CustomMetricInfo {
  name: string;
  kind: string;
}

export interface CreatedApp {
  name: string;
  drain_url: string;
  api_token?: string;
}

/** ApiError is any non-2xx answer; status 0 means the network failed. */
export class ApiError extends Error {
  constructor(public status: number, message: string) {
    super(message);
  }
}

const KEY = 'drainpipe.token';

export function getToken(): string | null {
  try {
    return sessionStorage.getItem(KEY) || localStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function setToken(token: string, remember: boolean): void {
  sessionStorage.removeItem(ROLE_KEY);
  sessionStorage.setItem(KEY, token);
  if (remember) localStorage.setItem(KEY, token);
  else localStorage.removeItem(KEY);
}

export function clearToken(): void {
  sessionStorage.removeItem(ROLE_KEY);
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
}

const ROLE_KEY = 'drainpipe.role';

/** Me is GET /api/me: what the token may do. */
export interface Me {
  role: 'admin' | 'app';
  app?: string;
}

/** roleKnown tells whether the session knows the token's role yet. */
export function roleKnown(): boolean {
  try {
    return sessionStorage.getItem(ROLE_KEY) !== null;
  } catch {
    return false;
  }
}

/** setRole records the token's role from GET /api/me for the session. */
export function setRole(me: Me): void {
  try {
    sessionStorage.setItem(ROLE_KEY, me.role);
  } catch {
    /* storage unavailable */
  }
}

/**
 * isAppToken tells whether the stored token is an app token, which reads
 * one app and may not create apps. The role comes from GET /api/me (asked
 * at sign-in and on load); a 403 on an admin action also marks the token
 * (markAppToken) for the session.
 */
export function isAppToken(): boolean {
  if (!getToken()) return false;
  try {
    return sessionStorage.getItem(ROLE_KEY) === 'app';
  } catch {
    return false;
  }
}

export function markAppToken(): void {
  try {
    sessionStorage.setItem(ROLE_KEY, 'app');
  } catch {
    /* storage unavailable */
  }
}

/** onUnauthorized is called when a signed-in request gets a 401. */
export let onUnauthorized: (msg: string) => void = () => {};
export function setUnauthorizedHandler(f: (msg: string) => void): void {
  onUnauthorized = f;
}

/**
 * onStoreDown is told after each API answer whether the metrics store
 * could be reached: the server's message on a 503 (database down or
 * failing over), null on any 2xx.
 */
let onStoreDown: (msg: string | null) => void = () => {};
export function setStoreDownHandler(f: (msg: string | null) => void): void {
  onStoreDown = f;
}

export type Params = Record<string, string | number | null | undefined>;

function url(path: string, params?: Params): string {
  const q = new URLSearchParams();
  if (params) for (const k in params) if (params[k] != null && params[k] !== '') q.set(k, String(params[k]));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/** request performs one API call with the given (or stored) token. */
export async function request<T>(
  method: string,
  path: string,
  opts: { params?: Params; body?: unknown; token?: string; signal?: AbortSignal } = {},
): Promise<T> {
  const token = opts.token ?? getToken();
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(url(path, opts.params), {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
      cache: 'no-store',
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(0, 'The server could not be reached.');
  }
  if (!res.ok) {
    let msg = `${res.status} ${res.statusText}`;
    try {
      const j = await res.json();
      if (j && typeof j.error === 'string') msg = j.error;
    } catch {
      /* not JSON */
    }
    const err = new ApiError(res.status, msg);
    if (res.status === 401 && opts.token === undefined) onUnauthorized(msg);
    if (res.status === 503) onStoreDown(msg);
    throw err;
  }
  onStoreDown(null);
  return (await res.json()) as T;
}

export const get = <T>(path: string, params?: Params, signal?: AbortSignal) =>
  request<T>('GET', path, { params, signal });

export const appPath = (app: string) => `/api/apps/${encodeURIComponent(app)}`;
