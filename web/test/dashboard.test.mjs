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
import { CI, api, charts, createApp, frame, launch, missing, newPage, postDrain, repoDir, startServer, waitForBackfill, waitReady } from './harness.mjs';

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

      // Legend entries are toggle buttons for the keyboard too, and the
      // choice survives a refresh like a click's.
      const maxRow = '[data-chart="latency"] .u-legend tr.u-series:nth-child(4)';
      assert.match(await page.textContent(maxRow), /max/);
      assert.equal(await page.getAttribute(maxRow, 'tabindex'), '0');
      assert.equal(await page.getAttribute(maxRow, 'role'), 'button');
      assert.equal(await page.getAttribute(maxRow, 'aria-pressed'), 'false', 'max is hidden by default');
      await page.focus(maxRow);
      await page.keyboard.press('Enter');
      assert.equal(await page.getAttribute(maxRow, 'aria-pressed'), 'true', 'Enter shows max');
      assert.ok(!(await page.$eval(maxRow, (e) => e.classList.contains('u-off'))), 'legend shows max as on');
      await page.click('#ctl-refresh');
      await waitReady(page);
      assert.equal(await page.getAttribute(maxRow, 'aria-pressed'), 'true', 'the toggle survives a refresh');
      await page.focus(maxRow);
      await page.keyboard.press(' ');
      assert.equal(await page.getAttribute(maxRow, 'aria-pressed'), 'false', 'Space hides it again');
      // The still-open last bucket of a count chart is marked as partial.
      const tp = await page.$eval('[data-chart="throughput"]', (e) => ({ open: Number(e.dataset.open), buckets: Number(e.dataset.buckets) }));
      assert.equal(tp.open, tp.buckets - 1, 'throughput marks its last bucket as still open');

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
        assert.match(await page.textContent('[data-chart="events"] .event-detail-head strong'), /\d\d:\d\d\u2013\d\d:\d\d UTC/, 'the detail names the bucket range');
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
      // Restarts count "Restarting" events only; crashes have their own figure.
      const dwin = await page.evaluate(() => {
        const end = Math.ceil(Date.now() / 600000) * 600;
        return { start_time: new Date((end - 86400) * 1000).toISOString(), end_time: new Date(end * 1000).toISOString(), step: '10m' };
      });
      const ev = await api(server, `/api/apps/${encodeURIComponent(main)}/events?${new URLSearchParams({ ...dwin, dyno })}`);
      const kindSum = (k) => (ev.data?.[k] ?? []).reduce((a, v) => a + (v ?? 0), 0);
      assert.equal(Number((await page.textContent('[data-stat="restarts"] dd')).replace(/,/g, '')), kindSum('restart'), 'restarts');
      assert.equal(Number((await page.textContent('[data-stat="crashes"] dd')).replace(/,/g, '')), kindSum('crash'), 'crashes');
      assert.match(await page.textContent('[data-chart="events"] header'), /app-wide deploys/);
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
      const over = await page.$$eval('.summary .stat', (els) => els.filter((e) => e.scrollWidth > e.clientWidth + 1).map((e) => e.dataset.stat));
      assert.deepEqual(over, [], 'no summary tile overflows');
      await page.context().close();
    });

    test('a lone value is drawn; a new app says "no data yet"; an app token cannot add apps', T, async () => {
      // A handful of requests and one memory sample, all in one minute.
      const sparse = await createApp(server, 'sparse-test');
      const now = new Date();
      const frames = [];
      for (let i = 0; i < 4; i++) {
        frames.push(frame(`at=info method=GET path=/ host=sparse-test.herokuapp.com request_id=r${i} fwd="10.0.0.1" dyno=web.1 connect=1ms service=${12 + i * 4}ms status=200 bytes=120 protocol=https`, { time: now }));
      }
      frames.push(
        frame('source=web.1 dyno=heroku.1.abc sample#memory_total=222.00MB sample#memory_rss=210.00MB sample#memory_cache=12.00MB sample#memory_swap=0.00MB sample#memory_pgpgin=1pages sample#memory_pgpgout=1pages sample#memory_quota=512.00MB', { time: now, proc: 'web.1' }),
      );
      await postDrain(sparse.drain_url, frames);
      const fresh = await createApp(server, 'fresh-test');
      // Wait until the aggregator has folded the lines in.
      const t0 = Date.now();
      for (;;) {
        const a = (await api(server, '/api/apps')).find((x) => x.name === 'sparse-test');
        if ((a?.summary?.requests ?? 0) >= 4 && a?.summary?.memory_peak_bytes) break;
        assert.ok(Date.now() - t0 < 60000, 'sparse-test data arrives within 60 s');
        await new Promise((r) => setTimeout(r, 500));
      }

      const page = await newPage(browser, server);
      await page.goto(`${server.url}/apps/sparse-test?range=1h`);
      await waitReady(page);
      const c = await page.$$eval('[data-chart]', (els) => Object.fromEntries(els.map((e) => [e.dataset.chart, { state: e.dataset.state, points: Number(e.dataset.points), isolated: Number(e.dataset.isolated) }])));
      for (const id of ['latency', 'memory']) {
        assert.equal(c[id].state, 'ready', `${id} drawn`);
        assert.ok(c[id].isolated > 0, `${id} draws its lone values as dots (${c[id].isolated})`);
      }
      // And the dots are really on the canvas: pixels in the plot area in a shown series' colour.
      for (const id of ['latency', 'memory']) {
        const hits = await page.$eval(`[data-chart="${id}"]`, (el) => {
          const canvas = el.querySelector('.uplot canvas');
          const over = el.querySelector('.u-over').getBoundingClientRect();
          const cr = canvas.getBoundingClientRect();
          const k = canvas.width / cr.width;
          const colours = [...el.querySelectorAll('.u-legend tr.u-series:not(.u-off) .u-marker')].map((m) =>
            getComputedStyle(m).borderTopColor.match(/\d+/g).slice(0, 3).map(Number),
          );
          const x = Math.round((over.left - cr.left) * k);
          const y = Math.round((over.top - cr.top) * k);
          const img = canvas.getContext('2d').getImageData(x, y, Math.round(over.width * k), Math.round(over.height * k)).data;
          let n = 0;
          for (let i = 0; i < img.length; i += 4) {
            if (img[i + 3] < 200) continue;
            if (colours.some(([r, g, b]) => Math.abs(img[i] - r) + Math.abs(img[i + 1] - g) + Math.abs(img[i + 2] - b) < 40)) n++;
          }
          return n;
        });
        assert.ok(hits >= 10, `${id}: the lone values are painted (${hits} pixels in series colours)`);
      }
      await page.screenshot({ path: join(tmpdir(), 'drainpipe-sparse.png') });

      // The fleet: an app with nothing yet says so instead of "OK" and zeros.
      await page.goto(server.url + '/');
      await waitReady(page);
      const row = await page.$eval('tr[data-app="fresh-test"]', (tr) => Object.fromEntries([...tr.querySelectorAll('td')].map((td) => [td.dataset.col, td.textContent.trim()])));
      assert.equal(row.trouble, 'no data yet');
      assert.equal(row.h, '–');
      assert.equal(row.rpm, '–');
      // The add-an-app form takes names the server takes (the pattern compiles under the v flag).
      assert.ok(await page.isVisible('details.create-app'), 'the admin token can add apps');
      const valid = await page.$eval('#new-app', (el) =>
        Object.fromEntries(['a', 'my-app', 'app2', 'bad-', 'Bad', '1app', 'x'.repeat(64)].map((v) => ((el.value = v), [v, el.checkValidity()]))),
      );
      assert.deepEqual(valid, { a: true, 'my-app': true, app2: true, 'bad-': false, Bad: false, '1app': false, ['x'.repeat(64)]: false });
      await page.context().close();

      // An app token: no "Add an app" (it could only be refused).
      const appPage = await newPage(browser, { ...server, token: fresh.api_token });
      await appPage.goto(server.url + '/');
      await waitReady(appPage);
      assert.deepEqual(await appPage.$$eval('tr[data-app]', (trs) => trs.map((t) => t.dataset.app)), ['fresh-test']);
      assert.equal(await appPage.$('details.create-app'), null, 'no create form for an app token');
      await appPage.context().close();
    });

    test('a banner says the metrics store is unavailable while the API answers 503, and goes when it answers again', T, async () => {
      // The scale-out API answers 503 while PostgreSQL is down
      // (e2e.TestScaleOutExactlyOnce checks that on real processes); here
      // the browser is given that answer for /api/apps.
      const page = await newPage(browser, server);
      const msg = 'the metrics store is unavailable (database down or failing over); retry shortly';
      await page.route('**/api/apps', (route) =>
        route.fulfill({ status: 503, contentType: 'application/json', headers: { 'Retry-After': '5' }, body: JSON.stringify({ error: msg }) }),
      );
      await page.goto(server.url + '/');
      await page.waitForSelector('#store-banner:not([hidden])');
      const text = await page.textContent('#store-banner');
      assert.match(text, /Metrics are unavailable right now/);
      assert.ok(text.includes(msg), `the banner carries the server's message: ${text}`);
      await page.unroute('**/api/apps');
      await page.click('.notice.error button'); // the fleet's Retry
      await page.waitForSelector('#store-banner[hidden]', { state: 'attached' });
      await page.waitForSelector('tr[data-app]');
      await page.context().close();
    });

    test('an unknown app is one page-level message; a failed figure shows "–", not 0', T, async () => {
      const page = await newPage(browser, server);
      await page.goto(`${server.url}/apps/nope`);
      await waitReady(page);
      assert.match(await page.textContent('#app-missing h1'), /No app named nope/);
      assert.equal(await page.getAttribute('#app-missing a', 'href'), '/');
      assert.equal((await page.$$('[data-chart]')).length, 0, 'no chart boxes');
      assert.equal(await page.isVisible('.summary'), false, 'no summary of zeros');
      await page.click('#app-missing a');
      await page.waitForURL(server.url + '/');
      await waitReady(page);
      assert.ok((await page.$$('tr[data-app]')).length > 0, 'back on the fleet');
      await page.context().close();

      // One request fails: its chart offers Retry, its summary figure is "–".
      const p2 = await newPage(browser, server);
      await p2.route('**/router-metrics/errors?**', (r) => r.fulfill({ status: 500, contentType: 'application/json', body: '{"error":"boom"}' }));
      await p2.goto(`${server.url}/apps/${main}`);
      await waitReady(p2);
      assert.equal(await p2.getAttribute('[data-chart="router-errors"]', 'data-state'), 'error');
      assert.equal((await p2.textContent('[data-stat="h-errors"] dd')).trim(), '–');
      assert.match(await p2.textContent('[data-stat="requests"] dd'), /\d/, 'the other figures still show');
      await p2.context().close();
    });
  });
}
