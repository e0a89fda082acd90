// Shared helpers for the browser tests and the benchmark: launch Debian's
// Chromium through playwright-core (no browser download), start the real
// `drainpipe demo` server (DRAINPIPE_BIN), and wait for its backfill.
//
// DASHBOARD_FAKE=1 points the tests at web/dev/fake-api.mjs instead: a
// dev-only convenience for working on the dashboard without the Go server.
// It is refused under CI=true, where the real binary is required.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const webDir = join(dirname(fileURLToPath(import.meta.url)), '..');
export const repoDir = join(webDir, '..');
export const CI = process.env.CI === 'true';

export function chromiumPath() {
  const p = process.env.CHROMIUM || '/usr/bin/chromium';
  return existsSync(p) ? p : null;
}

/** why the browser tests cannot run here, or null when they can */
export function missing() {
  const miss = [];
  if (!chromiumPath()) miss.push(`Chromium not found at ${process.env.CHROMIUM || '/usr/bin/chromium'} (apt-get install chromium)`);
  if (process.env.DASHBOARD_FAKE === '1') {
    if (CI) miss.push('DASHBOARD_FAKE=1 is dev-only and not allowed under CI=true');
  } else {
    const bin = process.env.DRAINPIPE_BIN;
    if (!bin) miss.push('DRAINPIPE_BIN is not set (path to a built drainpipe binary)');
    else if (!existsSync(bin)) miss.push(`DRAINPIPE_BIN=${bin} does not exist`);
  }
  return miss.length ? miss.join('; ') : null;
}

export async function launch() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: chromiumPath(),
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic'],
  });
}

/**
 * startServer spawns `$DRAINPIPE_BIN demo --listen 127.0.0.1:0 --data <tmp>`
 * (or the dev fake) and resolves with {url, token, stop, proc, dataDir} once
 * it printed `URL: …` and `Admin token: …`.
 */
export async function startServer({ extraArgs = [], fakeApps = 0 } = {}) {
  let cmd;
  let argv;
  let dataDir = null;
  if (process.env.DASHBOARD_FAKE === '1') {
    if (CI) throw new Error('DASHBOARD_FAKE=1 is dev-only');
    cmd = process.execPath;
    argv = [join(webDir, 'dev/fake-api.mjs'), '--port', '0', '--apps', String(fakeApps)];
  } else {
    dataDir = mkdtempSync(join(tmpdir(), 'drainpipe-web-test-'));
    cmd = process.env.DRAINPIPE_BIN;
    argv = ['demo', '--listen', '127.0.0.1:0', '--data', dataDir, ...extraArgs];
  }
  const proc = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr.on('data', (d) => {
    err += d;
    if (err.length > 20000) err = err.slice(-10000);
  });
  const info = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not print URL and token within 60 s.\nstdout: ${out}\nstderr: ${err}`)), 60000);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}.\nstdout: ${out}\nstderr: ${err}`));
    });
    proc.stdout.on('data', (d) => {
      out += d;
      const url = /URL:\s*(https?:\/\/\S+)/i.exec(out);
      const token = /Admin token:\s*(\S+)/i.exec(out);
      if (url && token) {
        clearTimeout(timer);
        resolve({ url: url[1].replace(/\/$/, ''), token: token[1] });
      }
    });
  });
  proc.removeAllListeners('exit');
  const stop = async () => {
    if (proc.exitCode == null) {
      proc.kill('SIGTERM');
      await new Promise((r) => {
        const t = setTimeout(() => {
          proc.kill('SIGKILL');
          r();
        }, 5000);
        proc.once('exit', () => {
          clearTimeout(t);
          r();
        });
      });
    }
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  };
  // The demo logs "backfill done" on stderr once its history is sent.
  let backfilled = false;
  const watch = (d) => {
    if (/backfill done/.test(String(d))) backfilled = true;
  };
  proc.stderr.on('data', watch);
  proc.stdout.on('data', watch);
  if (/backfill done/.test(err + out)) backfilled = true;
  return { ...info, proc, dataDir, stop, stderr: () => err, stdout: () => out, backfilled: () => backfilled || !!process.env.DASHBOARD_FAKE };
}

export async function api(server, path, token = server.token) {
  const res = await fetch(server.url + path, { headers: { Authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

/**
 * waitForBackfill polls /api/apps until every app has requests in its
 * summary (the demo backfills history at start). After `graceMs` it settles
 * for the apps that have data, as long as there is at least one.
 */
export async function waitForBackfill(server, { timeoutMs = 360000, graceMs = 120000 } = {}) {
  const t0 = Date.now();
  let apps = [];
  for (;;) {
    try {
      apps = await api(server, '/api/apps');
    } catch {
      apps = [];
    }
    const withData = apps.filter((a) => (a.summary?.requests ?? 0) > 0);
    const sent = server.backfilled ? server.backfilled() : true;
    if (sent && apps.length && withData.length === apps.length) {
      // Give the aggregator a moment to fold in the last of the backfill.
      await new Promise((r) => setTimeout(r, 2000));
      return api(server, '/api/apps');
    }
    if (sent && withData.length && Date.now() - t0 > graceMs) return apps;
    if (Date.now() - t0 > timeoutMs) throw new Error(`backfill not done after ${timeoutMs} ms: ${JSON.stringify(apps.map((a) => [a.name, a.summary?.requests]))}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/**
 * waitQuiet waits until the aggregator has caught up with what the drain
 * took in (drainpipe's own /metrics), so a benchmark does not race the
 * backfill's aggregation for the CPU. Gives up quietly after timeoutMs.
 */
export async function waitQuiet(server, { timeoutMs = 180000, slack = 20000 } = {}) {
  const total = (text, name) =>
    text
      .split('\n')
      .filter((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'))
      .reduce((a, l) => a + Number(l.trim().split(/\s+/).pop()), 0);
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    try {
      const res = await fetch(server.url + '/metrics');
      if (!res.ok) return false;
      const text = await res.text();
      const drained = total(text, 'drainpipe_drain_lines_total');
      const applied = total(text, 'drainpipe_aggregate_lines_total');
      if (!drained || drained - applied <= slack) return true;
    } catch {
      return false;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  return false;
}

/** newPage opens a page already signed in (token put in sessionStorage, never the URL). */
export async function newPage(browser, server, { theme = 'light', width = 1280, height = 800, signedIn = true } = {}) {
  const ctx = await browser.newContext({ viewport: { width, height }, colorScheme: theme, deviceScaleFactor: 1 });
  if (signedIn) {
    await ctx.addInitScript((token) => {
      try {
        sessionStorage.setItem('drainpipe.token', token);
      } catch {}
    }, server.token);
  }
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  return page;
}

export async function waitReady(page, timeout = 30000) {
  await page.waitForSelector('#root[data-ready="true"]', { timeout });
}

/** charts returns {id: {state, points}} for every chart on the page. */
export function charts(page) {
  return page.$$eval('[data-chart]', (els) =>
    Object.fromEntries(els.map((e) => [e.dataset.chart, { state: e.dataset.state, points: Number(e.dataset.points), fp: e.dataset.fingerprint || '' }])),
  );
}

/** createApp creates an app through the API (admin token); resolves with {name, drain_url, api_token}. */
export async function createApp(server, name) {
  const res = await fetch(server.url + '/api/apps', {
    method: 'POST',
    headers: { Authorization: `Bearer ${server.token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name }),
  });
  if (res.status !== 201) throw new Error(`create ${name}: ${res.status} ${await res.text()}`);
  return res.json();
}

/**
 * frame encodes one syslog line as a Logplex octet-counted frame: the
 * length counts the bytes after the space, the trailing newline included.
 */
export function frame(msg, { time = new Date(), proc = 'router', app = 'heroku' } = {}) {
  const line = `<158>1 ${time.toISOString()} host ${app} ${proc} - ${msg}\n`;
  return `${Buffer.byteLength(line)} ${line}`;
}

/** postDrain posts frames to an app's drain URL (basic auth taken from the URL). */
export async function postDrain(drainURL, frames) {
  const u = new URL(drainURL);
  const auth = Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64');
  u.username = '';
  u.password = '';
  const res = await fetch(u, {
    method: 'POST',
    headers: { Authorization: `Basic ${auth}`, 'Content-Type': 'application/logplex-1', 'Logplex-Msg-Count': String(frames.length) },
    body: frames.join(''),
  });
  if (!res.ok) throw new Error(`drain ${u.pathname}: ${res.status} ${await res.text()}`);
}
