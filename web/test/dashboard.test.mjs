// Browser tests of the dashboard against the real demo server:
//   DRAINPIPE_BIN=/path/to/drainpipe node --test test/
// Chromium comes from Debian (CHROMIUM, default /usr/bin/chromium). Without
// it or the binary the tests are skipped, except under CI=true, where they
// fail. Screenshots go to docs/screenshots/ (1280×800).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { CI, api, charts, launch, missing, newPage, repoDir, startServer, waitForBackfill, waitReady } from './harness.mjs';

const why = missing();
// Screenshots of the dev-only fake API never land in docs/.
const shots = process.env.DASHBOARD_FAKE === '1' ? join(tmpdir(), 'drainpipe-fake-screenshots') : join(repoDir, 'docs', 'screenshots');
const T = { timeout: 180000 };
const SETUP = { timeout: 420000 };

if (why && CI) {
  test('browser test prerequisites', () => assert.fail(`CI=true but ${why}`));
} else if (why) {
  test('dashboard browser tests', { skip: why }, () => {});
} else {
  describe('dashboard', () => {
    let server;
    let browser;
    let apps; // from /api/apps after the backfill
    let main; // the app drilled into: most requests
    let multi; // an app with more than one process type, if any

    const seriesHasData = async (app, path, params) => {
      const q = new URLSearchParams(params).toString();
      const r = await api(server, `/api/apps/${encodeURIComponent(app)}${path}?${q}`);
      return Object.values(r.data ?? {}).some((arr) => arr.some((v) => v != null));
    };

    before(async () => {
      server = await startServer({ fakeApps: 0 });
      apps = await waitForBackfill(server, process.env.DASHBOARD_FAKE === "1" ? { graceMs: 1000 } : {});
      browser = await launch();
      mkdirSync(shots, { recursive: true });
      const withData = apps.filter((a) => (a.summary?.requests ?? 0) > 0);
      main = withData.sort((a, b) => b.summary.requests - a.summary.requests)[0].name;
      for (const a of apps) {
        const f = await api(server, `/api/apps/${encodeURIComponent(a.name)}/formation`);
        if ((f.process_types ?? []).length > 1 && (a.summary?.requests ?? 0) > 0) {
          multi = { name: a.name, types: f.process_types.map((t) => t.name) };
          break;
        }
      }
    }, SETUP);

    after(async () => {
      await browser?.close();
      await server?.stop();
    });

    test('fleet page lists every app with numbers; sort, filter and keyboard work', T, async () => {
      const page = await newPage(browser, server);
      await page.goto(server.url + '/');
      await waitReady(page);
      const rows = await page.$$eval('tr[data-app]', (trs) =>
        trs.map((tr) => ({
          app: tr.dataset.app,
          cells: Object.fromEntries([...tr.querySelectorAll('td')].map((td) => [td.dataset.col, td.textContent.trim()])),
          spark: !!tr.querySelector('svg.spark path'),
        })),
      );
      assert.deepEqual(rows.map((r) => r.app).sort(), apps.map((a) => a.name).sort(), 'every app has a row');
      for (const a of apps.filter((x) => (x.summary?.requests ?? 0) > 0)) {
        const r = rows.find((x) => x.app === a.name);
        assert.match(r.cells.rpm, /\d/, `${a.name}: throughput shows a number`);
        assert.match(r.cells.p95, /\d/, `${a.name}: p95 shows a number`);
        assert.match(r.cells.e5xx, /\d/, `${a.name}: 5xx share shows a number`);
        assert.match(r.cells.h, /\d/, `${a.name}: H errors show a number`);
        assert.ok(r.spark, `${a.name}: has a sparkline`);
      }
      await page.screenshot({ path: join(shots, 'fleet-light.png') });

      // Sorting by p95 (numbers sort biggest first), with aria-sort.
      await page.click('th[data-col="p95"] button');
      assert.equal(await page.getAttribute('th[data-col="p95"]', 'aria-sort'), 'descending');
      // Read the p95 the page shows (live traffic moves the numbers between API calls).
      const shown = await page.$$eval('tr[data-app] td[data-col="p95"]', (tds) =>
        tds.map((td) => {
          const m = /([\d.,]+)\s*(ms|s)/.exec(td.textContent);
          return m ? Number(m[1].replace(/,/g, '')) * (m[2] === 's' ? 1000 : 1) : -1;
        }),
      );
      for (let i = 1; i < shown.length; i++) assert.ok(shown[i - 1] >= shown[i] || shown[i] === -1, `sorted by p95: ${shown}`);
      assert.match(page.url(), /sort=p95/);

      // Filter by name.
      await page.fill('#fleet-filter', main);
      const visible = await page.$$eval('tr[data-app]', (trs) => trs.filter((tr) => !tr.hidden).map((tr) => tr.dataset.app));
      assert.ok(visible.includes(main) && visible.every((n) => n.includes(main)));
      await page.fill('#fleet-filter', '');

      // Keyboard: focus the row and press Enter to drill down.
      await page.focus(`tr[data-app="${main}"]`);
      await page.keyboard.press('Enter');
      await page.waitForURL(`**/apps/${main}`);
      await waitReady(page);
      await page.context().close();
    });

    test('app page draws data points in every chart whose data exists', T, async () => {
      const page = await newPage(browser, server);
      await page.goto(server.url + '/');
      await waitReady(page);
      await page.click(`tr[data-app="${main}"]`);
      await page.waitForURL(`**/apps/${main}`);
      await waitReady(page);
      const c = await charts(page);
      for (const id of ['events', 'latency', 'throughput', 'router-errors', 'memory', 'load', 'dyno-errors', 'log-loss']) {
        assert.ok(c[id], `chart ${id} is on the page`);
      }
      for (const id of ['latency', 'throughput', 'memory', 'load']) {
        assert.equal(c[id].state, 'ready', `${id} is drawn`);
        assert.ok(c[id].points > 0, `${id} drew data points (${c[id].points})`);
      }
      // The other charts must show data exactly when the API has some for the same window.
      const win = await page.evaluate(() => {
        const end = Math.ceil(Date.now() / 600000) * 600;
        return { start_time: new Date((end - 86400) * 1000).toISOString(), end_time: new Date(end * 1000).toISOString(), step: '10m', process_type: 'web' };
      });
      const ap = { events: '/events', 'router-errors': '/router-metrics/errors', 'dyno-errors': '/formation/web/metrics/errors', 'log-loss': '/log-loss' };
      for (const [id, path] of Object.entries(ap)) {
        const has = await seriesHasData(main, path, win);
        if (has) assert.ok(c[id].state === 'ready' && c[id].points > 0, `${id}: API has data, chart drew ${c[id].points} points`);
        else assert.equal(c[id].state, 'empty', `${id}: API has no data, chart says so`);
      }
      // Custom metrics load when their section is scrolled near.
      const custom = (await api(server, `/api/apps/${encodeURIComponent(main)}/custom-metrics`)).metrics ?? [];
      assert.equal(Object.keys(c).filter((k) => k.startsWith('custom-')).length, 0, 'custom metrics wait until scrolled to');
      await page.$eval('section.custom', (e) => e.scrollIntoView());
      await page.waitForFunction(
        (n) => document.querySelectorAll('[data-chart^="custom-"]:not([data-state="loading"])').length === n && document.querySelector('#root').dataset.ready === 'true',
        custom.length,
        { timeout: 30000 },
      );
      const cc = await charts(page);
      for (const m of custom) {
        const x = cc['custom-' + m.name];
        assert.ok(x, `custom metric ${m.name} has a chart`);
        assert.notEqual(x.state, 'error', `custom metric ${m.name} loaded`);
      }
      if (custom.length) assert.ok(custom.some((m) => cc['custom-' + m.name].points > 0), 'custom metrics drew points');
      await page.evaluate(() => window.scrollTo(0, 0));
      // Summary strip from the merged distribution.
      const p95 = await page.textContent('[data-stat="p95"] dd');
      assert.match(p95, /\d/);
      await page.screenshot({ path: join(shots, 'app-light.png') });

      // Clicking an event marker opens its detail (if there are events).
      if (c.events.points > 0) {
        const pos = await page.evaluate(() => {
          const box = document.querySelector('[data-chart="events"] .u-over');
          const r = box.getBoundingClientRect();
          return { x: r.left, y: r.top, w: r.width, h: r.height };
        });
        // Sweep the events plot until a marker's bucket is hit.
        let opened = false;
        for (let x = pos.x + 1; x < pos.x + pos.w && !opened; x += 2) {
          await page.mouse.click(x, pos.y + pos.h / 2);
          opened = (await page.$$('[data-chart="events"] .event-detail tr')).length > 1;
        }
        assert.ok(opened, 'clicking a marker shows event details');
      }
      await page.context().close();
    });

    test('switching time range and process type changes the charts; back works', T, async () => {
      const page = await newPage(browser, server);
      await page.goto(`${server.url}/apps/${main}`);
      await waitReady(page);
      const before24 = await charts(page);
      await page.click('button[data-range="2h"]');
      await waitReady(page);
      assert.match(page.url(), /range=2h/);
      const after2 = await charts(page);
      assert.equal(await page.getAttribute('button[data-range="2h"]', 'aria-pressed'), 'true');
      for (const id of ['latency', 'memory']) {
        assert.notEqual(after2[id].fp, before24[id].fp, `${id} changed with the range`);
      }
      assert.equal(await page.getAttribute('[data-chart="memory"]', 'data-buckets'), '120', '2h in 1m steps');
      await page.goBack();
      await waitReady(page);
      assert.equal(await page.getAttribute('button[data-range="24h"]', 'aria-pressed'), 'true', 'back restores 24h');
      assert.equal(await page.getAttribute('[data-chart="memory"]', 'data-buckets'), '144', '24h in 10m steps');
      await page.context().close();

      assert.ok(multi, 'the demo has an app with more than one process type');
      const p2 = await newPage(browser, server);
      await p2.goto(`${server.url}/apps/${multi.name}`);
      await waitReady(p2);
      const web = await charts(p2);
      const other = multi.types.find((t) => t !== 'web');
      await p2.selectOption('#ctl-type', other);
      await waitReady(p2);
      assert.match(p2.url(), new RegExp(`type=${other}`));
      const oth = await charts(p2);
      assert.notEqual(oth.memory.fp, web.memory.fp, 'memory changed with the process type');
      assert.equal(oth.latency.state, 'empty', `no router metrics for ${other}`);
      assert.ok(oth.memory.points > 0, `${other} memory has points`);
      await p2.context().close();
    });

    test('deep links open the right state (app and dyno)', T, async () => {
      const target = multi ?? { name: main, types: ['web'] };
      const type = target.types.find((t) => t !== 'web') ?? 'web';
      const page = await newPage(browser, server);
      await page.goto(`${server.url}/apps/${target.name}?type=${type}&range=2h&tz=local`);
      await waitReady(page);
      assert.equal(await page.$eval('#ctl-type', (s) => s.value), type);
      assert.equal(await page.getAttribute('button[data-range="2h"]', 'aria-pressed'), 'true');
      assert.equal(await page.getAttribute('button[data-tz="local"]', 'aria-pressed'), 'true');
      assert.equal(await page.getAttribute('[data-chart="memory"]', 'data-buckets'), '120');

      const f = await api(server, `/api/apps/${encodeURIComponent(main)}/formation`);
      const dyno = f.process_types.find((t) => t.name === 'web')?.dynos?.[0];
      assert.ok(dyno, `${main} has a web dyno`);
      await page.goto(`${server.url}/apps/${main}/dynos/${dyno}?range=24h`);
      await waitReady(page);
      assert.match(await page.textContent('h1'), new RegExp(dyno.replace('.', '\\.')));
      const c = await charts(page);
      assert.ok(c.memory.points > 0 && c.load.points > 0, `dyno ${dyno} memory and load drawn`);
      assert.ok(c.events, 'dyno events chart present');
      assert.ok(!c.latency, 'no router charts on the dyno page');
      await page.context().close();
    });

    test('a wrong token shows an error; the right one signs in, never in the URL', T, async () => {
      const page = await newPage(browser, server, { signedIn: false });
      await page.goto(`${server.url}/apps/${main}`);
      await page.waitForSelector('#token');
      await page.fill('#token', 'not-the-token');
      await page.click('form.signin button[type="submit"]');
      await page.waitForFunction(() => /not accepted/.test(document.querySelector('#signin-error')?.textContent ?? ''));
      assert.match(await page.textContent('#signin-error'), /That token was not accepted \(401\)/);
      assert.ok(await page.isVisible('#signin-error'));
      await page.fill('#token', server.token);
      await page.click('form.signin button[type="submit"]');
      await page.waitForSelector('[data-chart="latency"]');
      await waitReady(page);
      assert.ok(page.url().endsWith(`/apps/${main}`), 'the deep link survives sign-in');
      assert.ok(!page.url().includes(server.token), 'no token in the URL');
      await page.context().close();
    });

    test('dark theme screenshots', T, async () => {
      const page = await newPage(browser, server, { theme: 'dark' });
      await page.goto(server.url + '/');
      await waitReady(page);
      assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(15, 18, 23)');
      await page.screenshot({ path: join(shots, 'fleet-dark.png') });
      await page.goto(`${server.url}/apps/${main}`);
      await waitReady(page);
      await page.screenshot({ path: join(shots, 'app-dark.png') });
      // The toggle overrides the system preference and is remembered.
      await page.click('#theme-toggle');
      assert.equal(await page.evaluate(() => localStorage.getItem('drainpipe.theme')), 'light');
      await page.context().close();
    });

    test('phone width: no horizontal page overflow, charts full width', T, async () => {
      const page = await newPage(browser, server, { width: 390, height: 844 });
      await page.goto(`${server.url}/apps/${main}`);
      await waitReady(page);
      const { sw, cw } = await page.evaluate(() => ({ sw: document.documentElement.scrollWidth, cw: document.documentElement.clientWidth }));
      assert.ok(sw <= cw + 1, `page does not scroll sideways (${sw} > ${cw})`);
      const w = await page.$eval('[data-chart="latency"]', (e) => e.getBoundingClientRect().width);
      assert.ok(w > 340, `chart spans the width (${w})`);
      await page.context().close();
    });
  });
}
