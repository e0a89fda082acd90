#!/usr/bin/env node
// DEV ONLY: a fake drainpipe API with made-up data, for working on the
// dashboard before/without the Go server. Never used by the real tests or
// the benchmark (test/harness.mjs refuses it under CI=true).
//
//   node dev/fake-api.mjs [--port 8099] [--apps 500]
//   admin token: dev-admin      app token for storefront: dev-storefront
//
//   node dev/fake-api.mjs --proxy http://127.0.0.1:8080
//   serves web/dist from disk and forwards /api/ to a real drainpipe (which
//   embeds the dist it was built with), to try a fresh build without
//   rebuilding the Go binary.
import { createServer, request as httpRequest } from 'node:http';
import { readFileSync, existsSync } from 'node:fs';
import { join, dirname, extname } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const opt = (k, d) => (args.includes(k) ? args[args.indexOf(k) + 1] : d);
const PORT = Number(opt('--port', 8099));
const EXTRA = Number(opt('--apps', 0));
const dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const ADMIN = 'dev-admin';

function hash(s) {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return (h >>> 0) / 4294967296;
}
const noise = (...k) => hash(k.join('|'));

const BASE = [
  { name: 'storefront', rpm: 900, p95: 120, rise: 1.5, err: 0.004, types: { web: 3, worker: 2 }, mem: 0.7 },
  { name: 'api-gateway', rpm: 2400, p95: 45, rise: 1, err: 0.03, types: { web: 4 }, mem: 0.55 },
  { name: 'billing-worker', rpm: 40, p95: 300, rise: 1, err: 0.001, types: { web: 1, worker: 3 }, mem: 1.05, r14: true },
  { name: 'marketing-site', rpm: 120, p95: 30, rise: 1, err: 0, types: { web: 2 }, mem: 0.4, loss: true },
  { name: 'new-app', rpm: 0, p95: 0, rise: 1, err: 0, types: {}, mem: 0, empty: true },
];
const apps = [...BASE];
for (let i = 0; i < EXTRA; i++) {
  const r = noise('gen', i);
  apps.push({ name: `app-${String(i).padStart(3, '0')}`, rpm: Math.round(r * 3000), p95: 20 + r * 400, rise: r > 0.9 ? 1.4 : 1, err: r > 0.85 ? 0.02 : 0.001, types: { web: 1 + Math.floor(r * 4), worker: 1 }, mem: 0.3 + r * 0.8 });
}
const created = new Map();
const now = () => Date.now() / 1000;
const QUOTA = 512 * 1048576;

function rpmAt(a, t, type = 'web') {
  if (a.empty || type !== 'web') return null;
  const day = Math.sin((t / 86400) * 2 * Math.PI) * 0.3 + 1;
  return a.rpm * day * (0.85 + 0.3 * noise(a.name, 'rpm', Math.floor(t / 60)));
}

function window(q) {
  const step = { '1m': 60, '10m': 600, '1h': 3600, '2h': 7200 }[q.get('step') || '1m'];
  const end = Date.parse(q.get('end_time') || new Date().toISOString()) / 1000;
  let start = Date.parse(q.get('start_time') || new Date((end - 3600) * 1000).toISOString()) / 1000;
  start = Math.floor(start / step) * step;
  const n = Math.ceil((end - start) / step);
  const xs = Array.from({ length: n }, (_, i) => start + i * step);
  return { step, start, end, n, xs, iso: (s) => new Date(s * 1000).toISOString().replace('.000Z', 'Z') };
}
const body = (w, data, extra = {}) => ({ start_time: w.iso(w.start), end_time: w.iso(w.end), step: ['1m', '10m', '1h', '2h'][[60, 600, 3600, 7200].indexOf(w.step)], data, ...extra });
const live = (a, t) => !a.empty && t <= now() && t > now() - 8 * 86400;

function series(a, path, q) {
  const w = window(q);
  const type = q.get('process_type') || 'web';
  const dyno = q.get('dyno');
  const data = {};
  const mk = (f) => w.xs.map((t, i) => (live(a, t) ? f(t, i) : null));
  if (path === 'latency') {
    const isWeb = type === 'web';
    const base = (t) => a.p95 * (t > now() - 3600 ? a.rise : 1) * (0.8 + 0.4 * noise(a.name, 'lat', t));
    data['latency.ms.p50'] = mk((t) => (isWeb ? base(t) * 0.4 : null));
    data['latency.ms.p95'] = mk((t) => (isWeb ? base(t) : null));
    data['latency.ms.p99'] = mk((t) => (isWeb ? base(t) * 1.8 : null));
    data['latency.ms.max'] = mk((t) => (isWeb ? base(t) * (noise(a.name, 'max', t) > 0.97 ? 60 : 3) : null));
    data['latency.connect.ms.p95'] = mk(() => (isWeb ? 1 + noise(a.name, 'c') * 2 : null));
    const reqs = isWeb && !a.empty ? Math.round(a.rpm * (w.end - w.start) / 60) : 0;
    return body(w, data, { summary: { requests: reqs, p50: reqs ? a.p95 * 0.4 : null, p95: reqs ? a.p95 * 1.05 : null, p99: reqs ? a.p95 * 1.9 : null, max: reqs ? a.p95 * 60 : null } });
  }
  if (path === 'status') {
    if (type !== 'web' || a.empty) return body(w, {});
    const m = w.step / 60;
    data['200'] = mk((t) => Math.round((rpmAt(a, t) ?? 0) * m * (1 - a.err - 0.06)));
    data['304'] = mk((t) => Math.round((rpmAt(a, t) ?? 0) * m * 0.04));
    data['404'] = mk((t) => Math.round((rpmAt(a, t) ?? 0) * m * 0.02));
    data['503'] = mk((t) => (a.err ? Math.round((rpmAt(a, t) ?? 0) * m * a.err * 2 * noise(a.name, '5', t)) : null));
    return body(w, data);
  }
  if (path === 'router-errors') {
    if (type !== 'web' || a.empty) return body(w, {});
    data.H12 = mk((t) => (noise(a.name, 'h12', t) > 0.8 ? Math.ceil(noise(a.name, 'h12n', t) * 5) : null));
    if (a.err > 0.01) data.H13 = mk((t) => (noise(a.name, 'h13', t) > 0.9 ? 1 : null));
    return body(w, data);
  }
  if (path === 'memory') {
    if (!a.types[type]) return body(w, {});
    const f = a.mem * (dyno ? 0.9 + 0.2 * noise(dyno) : 1);
    const tot = (t) => QUOTA * f * (0.8 + 0.2 * noise(a.name, type, dyno, 'm', t));
    data['memory.total.bytes.mean'] = mk((t) => tot(t) * 0.95);
    data['memory.total.bytes.max'] = mk((t) => tot(t));
    data['memory.rss.bytes.mean'] = mk((t) => tot(t) * 0.85);
    data['memory.rss.bytes.max'] = mk((t) => tot(t) * 0.9);
    data['memory.swap.bytes.mean'] = mk((t) => (f > 1 ? tot(t) * 0.08 : 0));
    data['memory.swap.bytes.max'] = mk((t) => (f > 1 ? tot(t) * 0.1 : 0));
    data['memory.cache.bytes.mean'] = mk(() => 5 * 1048576);
    data['memory.cache.bytes.max'] = mk(() => 6 * 1048576);
    data['memory.quota.bytes.max'] = mk(() => QUOTA);
    return body(w, data);
  }
  if (path === 'load') {
    if (!a.types[type]) return body(w, {});
    for (const k of ['1m', '5m', '15m']) {
      data[`load.avg.${k}.mean`] = mk((t) => 0.5 + noise(a.name, type, dyno, k, t));
      data[`load.avg.${k}.max`] = mk((t) => 1 + 2 * noise(a.name, type, dyno, k, 'x', t));
    }
    return body(w, data);
  }
  if (path === 'dyno-errors') {
    if (!a.types[type]) return body(w, {});
    if (a.r14) data.R14 = mk((t) => (noise(a.name, 'r14', t) > 0.7 ? 2 : null));
    data.R10 = mk((t) => (noise(a.name, 'r10', type, t) > 0.98 ? 1 : null));
    return body(w, data);
  }
  if (path === 'log-loss') {
    if (a.empty) return body(w, {});
    if (a.loss) data.L10 = mk((t) => (noise(a.name, 'l10', t) > 0.9 ? 40 : null));
    data['rejected.malformed'] = mk((t) => (noise(a.name, 'mal', t) > 0.97 ? 1 : null));
    return body(w, data);
  }
  return null;
}

function events(a, q) {
  const w = window(q);
  const type = q.get('process_type');
  const dyno = q.get('dyno');
  const evs = [];
  if (!a.empty) {
    const h = 3600;
    for (let t = Math.floor(w.start / h) * h; t < w.end; t += h) {
      if (!live(a, t)) continue;
      const r = noise(a.name, 'ev', t);
      if (r > 0.93) evs.push({ time: t + 600, kind: 'deploy', process_type: '', dyno: '', code: '', detail: `Deploy ${Math.floor(r * 1e7).toString(16)} by user dev@example.com` });
      if (r > 0.93) evs.push({ time: t + 605, kind: 'release', process_type: '', dyno: '', code: '', detail: `Release v${Math.floor(t / h) % 500} created by user dev@example.com` });
      if (r < 0.05) evs.push({ time: t + 1200, kind: 'restart', process_type: 'web', dyno: 'web.1', code: '', detail: 'Restarting' });
      if (r > 0.5 && r < 0.52) evs.push({ time: t + 1800, kind: 'crash', process_type: 'web', dyno: 'web.2', code: '', detail: 'State changed from up to crashed' });
      if (a.r14 && r > 0.3 && r < 0.4) evs.push({ time: t + 900, kind: 'dyno_error', process_type: 'worker', dyno: 'worker.1', code: 'R14', detail: 'Error R14 (Memory quota exceeded)' });
      if (r > 0.6 && r < 0.61) evs.push({ time: t + 300, kind: 'scale', process_type: '', dyno: '', code: '', detail: 'Scaled to web@3:Standard-1X by user dev@example.com' });
    }
  }
  const list = evs
    .filter((e) => e.time >= w.start && e.time < w.end && e.time <= now())
    .filter((e) => !type || !e.process_type || e.process_type === type)
    .filter((e) => !dyno || e.dyno === dyno);
  const data = {};
  for (const e of list) {
    const i = Math.floor((e.time - w.start) / w.step);
    data[e.kind] ??= new Array(w.n).fill(null);
    data[e.kind][i] = (data[e.kind][i] ?? 0) + 1;
  }
  return body(w, data, { events: list.map((e) => ({ ...e, time: new Date(e.time * 1000).toISOString() })) });
}

function summary(a) {
  const t = now();
  const rpm = Array.from({ length: 60 }, (_, i) => {
    const v = rpmAt(a, Math.floor(t / 60) * 60 - (59 - i) * 60);
    return v == null ? null : Math.round(v);
  });
  const requests = rpm.reduce((s, v) => s + (v ?? 0), 0);
  return {
    requests,
    rpm,
    p95_ms: a.empty ? null : a.p95 * a.rise,
    p95_prev_ms: a.empty ? null : a.p95,
    status_5xx: Math.round(requests * a.err * 0.9),
    h_errors: a.empty ? 0 : Math.round(noise(a.name, 'hc') * 20),
    r_errors: a.r14 ? 6 : 0,
    r14: a.r14 ? 6 : 0,
    log_loss: a.loss ? 40 : 0,
    memory_peak_bytes: a.empty ? null : QUOTA * a.mem,
    memory_quota_bytes: a.empty ? null : QUOTA,
    last_event: a.empty ? null : { time: new Date((t - 3600 * 5 * noise(a.name, 'le')) * 1000).toISOString(), kind: 'deploy', process_type: '', dyno: '', code: '', detail: 'Deploy 3f2a9c1 by user dev@example.com' },
  };
}

function send(res, code, obj) {
  const b = JSON.stringify(obj);
  res.writeHead(code, { 'Content-Type': 'application/json' });
  res.end(b);
}

function auth(req) {
  const m = /^Bearer (.+)$/.exec(req.headers.authorization || '');
  if (!m) return null;
  if (m[1] === ADMIN) return '*';
  if (m[1].startsWith('dev-')) {
    const name = m[1].slice(4);
    if (apps.some((a) => a.name === name)) return name;
  }
  return created.get(m[1]) ?? null;
}

const PROXY = opt('--proxy', '');

const server = createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  const p = u.pathname;
  if (PROXY && (p.startsWith('/api/') || p.startsWith('/drains/'))) {
    const up = new URL(req.url, PROXY);
    const preq = httpRequest(up, { method: req.method, headers: { ...req.headers, host: up.host } }, (pres) => {
      res.writeHead(pres.statusCode, pres.headers);
      pres.pipe(res);
    });
    preq.on('error', (e) => send(res, 502, { error: String(e) }));
    req.pipe(preq);
    return;
  }
  if (p.startsWith('/api/')) {
    const who = auth(req);
    if (!who) return send(res, 401, { error: 'invalid or missing token' });
    const delay = Number(process.env.FAKE_DELAY_MS || 0);
    setTimeout(() => {
      if (p === '/api/apps' && req.method === 'GET') {
        return send(res, 200, apps.filter((a) => who === '*' || a.name === who).map((a) => ({ name: a.name, created_at: '2026-01-01T00:00:00Z', summary: summary(a) })));
      }
      if (p === '/api/apps' && req.method === 'POST') {
        if (who !== '*') return send(res, 403, { error: 'admin token required' });
        let b = '';
        req.on('data', (c) => (b += c));
        req.on('end', () => {
          const name = JSON.parse(b || '{}').name;
          if (!/^[a-z][a-z0-9-]{1,62}$/.test(name || '')) return send(res, 400, { error: 'bad app name' });
          if (apps.some((a) => a.name === name)) return send(res, 409, { error: 'app exists' });
          apps.push({ name, rpm: 0, p95: 0, rise: 1, err: 0, types: {}, mem: 0, empty: true });
          const tok = 'tok-' + Math.random().toString(36).slice(2);
          created.set(tok, name);
          send(res, 201, { name, drain_url: `http://u${name}:s3cret@${req.headers.host}/drains/${name}`, api_token: tok });
        });
        return;
      }
      const m = /^\/api\/apps\/([^/]+)(\/.*)?$/.exec(p);
      const a = m && apps.find((x) => x.name === decodeURIComponent(m[1]));
      if (!a) return send(res, 404, { error: 'no such app' });
      if (who !== '*' && who !== a.name) return send(res, 404, { error: 'no such app' });
      const rest = m[2] || '';
      const q = u.searchParams;
      let mm;
      if (rest === '/formation') return send(res, 200, { process_types: Object.entries(a.types).map(([name, n]) => ({ name, dynos: Array.from({ length: n }, (_, i) => `${name}.${i + 1}`) })) });
      if (rest === '/router-metrics/latency') return send(res, 200, series(a, 'latency', q));
      if (rest === '/router-metrics/status') return send(res, 200, series(a, 'status', q));
      if (rest === '/router-metrics/errors') return send(res, 200, series(a, 'router-errors', q));
      if ((mm = /^\/formation\/([^/]+)\/metrics\/(memory|load|errors)$/.exec(rest))) {
        q.set('process_type', mm[1]);
        return send(res, 200, series(a, mm[2] === 'errors' ? 'dyno-errors' : mm[2], q));
      }
      if (rest === '/events') return send(res, 200, events(a, q));
      if (rest === '/log-loss') return send(res, 200, series(a, 'log-loss', q));
      if (rest === '/custom-metrics') return send(res, 200, { metrics: a.empty ? [] : [{ name: 'db.query', kind: 'measure' }, { name: 'signups', kind: 'count' }, { name: 'queue.depth', kind: 'sample' }] });
      if ((mm = /^\/custom-metrics\/(.+)$/.exec(rest))) {
        const w = window(q);
        const name = decodeURIComponent(mm[1]);
        const kind = { 'db.query': 'measure', signups: 'count', 'queue.depth': 'sample' }[name];
        if (!kind) return send(res, 404, { error: 'no such metric' });
        const mk = (f) => w.xs.map((t) => (live(a, t) && noise(a.name, name, t) > 0.1 ? f(t) : null));
        const keys = { count: ['sum'], sample: ['last', 'mean', 'max'], measure: ['count', 'sum', 'min', 'max', 'mean', 'p50', 'p95', 'p99'] }[kind];
        const mult = { count: 1, sum: 50, min: 0.2, max: 3, mean: 1, p50: 0.9, p95: 1.8, p99: 2.4, last: 1 };
        const data = {};
        for (const k of keys) data[k] = mk((t) => 20 * (mult[k] ?? 1) * (0.7 + 0.6 * noise(a.name, name, k, t)));
        return send(res, 200, body(w, data, { kind }));
      }
      send(res, 404, { error: 'not found' });
    }, delay);
    return;
  }
  // Static files from dist with SPA fallback (like web/embed.go).
  let f = join(dist, p);
  if (p === '/' || !existsSync(f) || !extname(p) || p.includes('..')) f = join(dist, 'index.html');
  const ct = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml' }[extname(f)] || 'application/octet-stream';
  res.writeHead(200, { 'Content-Type': ct + '; charset=utf-8', 'Cache-Control': 'no-cache' });
  res.end(readFileSync(f));
});
server.listen(PORT, '127.0.0.1', () => {
  const addr = server.address();
  console.log(PROXY ? `DEV-ONLY: dist from disk, API from ${PROXY}` : `DEV-ONLY fake drainpipe API (${apps.length} apps)`);
  console.log(`URL: http://127.0.0.1:${addr.port}`);
  console.log(`Admin token: ${ADMIN}`);
});
