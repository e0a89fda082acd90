#!/usr/bin/env node
// Browser speed benchmark of the dashboard (not a timed test): navigation →
// #root[data-ready="true"], read as performance.now() at readiness, i.e.
// milliseconds since navigation start. Prints a table of median/min/max.
//
//   DRAINPIPE_BIN=../drainpipe node test/bench.mjs [--runs 10] [--apps 500]
//
// 1. App page, 24 h view, against `drainpipe demo` (started here).
// 2. Fleet page with N apps, against a second demo server loaded by
//    `drainpipe loadgen --apps N` (started here).
// BENCH_URL/BENCH_TOKEN (and FLEET_URL/FLEET_TOKEN) use servers that are
// already running instead. DASHBOARD_FAKE=1 runs against the dev-only fake
// API (numbers from it are not the ones to report).
import { spawn } from 'node:child_process';
import { api, launch, missing, newPage, startServer, waitForBackfill, waitQuiet } from './harness.mjs';

const args = process.argv.slice(2);
const opt = (k, d) => (args.includes(k) ? args[args.indexOf(k) + 1] : d);
const RUNS = Number(opt('--runs', 10));
const NAPPS = Number(opt('--apps', 500));
const fake = process.env.DASHBOARD_FAKE === '1';

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function measure(browser, server, path, runs, { height = 800, custom = 0 } = {}) {
  const ready = [];
  const apiMax = [];
  // One tab: the first run is cold (fresh renderer, empty cache); the others
  // are full navigations in the same tab with the HTTP cache warm, as for a
  // returning user who opens a link or types the URL.
  const page = await newPage(browser, server, { height });
  const ctx = page.context();
  let cold = null;
  for (let i = 0; i < runs + 1; i++) {
    if (i) await page.goto(server.url + '/favicon.svg');
    await page.goto(server.url + path, { waitUntil: 'commit' });
    await page.waitForSelector('#root[data-ready="true"]', { timeout: 60000 });
    if (custom) {
      // Tall viewport: the custom-metrics section is on screen and loads too.
      await page.waitForFunction(
        (n) => document.querySelectorAll('[data-chart^="custom-"]:not([data-state="loading"])').length >= n && document.querySelector('#root').dataset.ready === 'true',
        custom,
        { timeout: 60000 },
      );
    }
    const r = await page.evaluate(() => ({
      readyAt: window.__readyAt,
      api: Math.max(0, ...performance.getEntriesByType('resource').filter((e) => e.name.includes('/api/')).map((e) => e.duration)),
      charts: document.querySelectorAll('[data-chart][data-state="ready"]').length,
      rows: document.querySelectorAll('tr[data-app]').length,
    }));
    if (i === 0) cold = r;
    else {
      ready.push(r.readyAt);
      apiMax.push(r.api);
    }
    if (i === runs) console.error(`  ${path}: ${r.charts} charts drawn, ${r.rows} fleet rows`);
  }
  await ctx.close();
  return { cold: cold.readyAt, median: median(ready), min: Math.min(...ready), max: Math.max(...ready), api: median(apiMax) };
}

async function fleetServer() {
  if (process.env.FLEET_URL) return { url: process.env.FLEET_URL.replace(/\/$/, ''), token: process.env.FLEET_TOKEN, stop: async () => {} };
  const s = await startServer({ fakeApps: NAPPS });
  if (!fake) {
    // Load N apps with the Go side's load generator, then wait until the
    // fleet summary lists them.
    console.error(`  loading ${NAPPS} apps with drainpipe loadgen …`);
    await new Promise((resolve, reject) => {
      // A tenth of the demo's traffic per app and an hour of history keep the
      // load short on a small machine; the fleet page reads only the last hour.
      const extra = (process.env.LOADGEN_ARGS ?? '--rate 0.1 --backfill 1h').split(/\s+/).filter(Boolean);
      const p = spawn(process.env.DRAINPIPE_BIN, ['loadgen', '--apps', String(NAPPS), '--prefix', 'lg-', '--url', s.url, '--admin-token', s.token, ...extra], { stdio: ['ignore', 'inherit', 'inherit'] });
      p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`loadgen exited with ${code}`))));
    });
  }
  for (let i = 0; i < 600; i++) {
    const apps = await api(s, '/api/apps');
    if (apps.length >= NAPPS) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  await waitQuiet(s);
  return s;
}

const why = missing();
if (why && !process.env.BENCH_URL) {
  console.error(`bench: ${why}`);
  process.exit(2);
}
const browser = await launch();
const rows = [];
try {
  const s = process.env.BENCH_URL ? { url: process.env.BENCH_URL.replace(/\/$/, ''), token: process.env.BENCH_TOKEN, stop: async () => {} } : await startServer();
  try {
    const apps = await waitForBackfill(s, fake ? { graceMs: 1000 } : {});
    await waitQuiet(s);
    const app = apps.filter((a) => a.summary?.requests > 0).sort((a, b) => b.summary.requests - a.summary.requests)[0].name;
    rows.push([`app page 24h (${app})`, await measure(browser, s, `/apps/${app}?range=24h`, RUNS)]);
    const nCustom = ((await api(s, `/api/apps/${encodeURIComponent(app)}/custom-metrics`)).metrics ?? []).length;
    if (nCustom) rows.push([`  same + ${nCustom} custom, 1280×4000`, await measure(browser, s, `/apps/${app}?range=24h`, RUNS, { height: 4000, custom: nCustom })]);
    rows.push([`fleet page (${apps.length} demo apps)`, await measure(browser, s, '/', RUNS)]);
  } finally {
    await s.stop();
  }
  if (NAPPS > 0) {
    const f = await fleetServer();
    try {
      const n = (await api(f, '/api/apps')).length;
      rows.push([`fleet page (${n} apps)`, await measure(browser, f, '/', RUNS)]);
    } finally {
      await f.stop();
    }
  }
} finally {
  await browser.close();
}

const fmt = (v) => v.toFixed(0).padStart(6);
console.log(`\nnavigation → data-ready, ms (${RUNS} runs after one cold run${fake ? '; DEV FAKE API' : ''})\n`);
console.log('view'.padEnd(36) + '  median     min     max    cold  slowest API (median)');
for (const [name, r] of rows) console.log(name.padEnd(36) + `  ${fmt(r.median)}  ${fmt(r.min)}  ${fmt(r.max)}  ${fmt(r.cold)}  ${fmt(r.api)}`);
