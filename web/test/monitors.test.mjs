// Browser tests of the monitors panel, alert events on the charts and the
// Platform API banner, against a real `drainpipe demo` (short backfill)
// whose Heroku Platform API is a local stub answering 503 "API in
// maintenance" until the test ends the maintenance.
//   DRAINPIPE_BIN=/path/to/drainpipe node --test test/monitors.test.mjs
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CI, api, createApp, frame, launch, missing, newPage, postDrain, repoDir, startServer, waitReady } from './harness.mjs';

const shots = join(repoDir, 'docs', 'screenshots');

const why = process.env.DASHBOARD_FAKE === '1' ? 'needs the real server (monitors are not in the dev fake)' : missing();
const T = { timeout: 180000 };

if (why && CI) {
  test('monitors browser test prerequisites', () => assert.fail(`CI=true but ${why}`));
} else if (why) {
  test('monitors browser tests', { skip: why }, () => {});
} else {
  describe('monitors', () => {
    let server;
    let browser;
    let platform;
    let maintenance = true;
    let app;

    before(async () => {
      platform = createServer((req, res) => {
        res.setHeader('Content-Type', 'application/json');
        if (maintenance) {
          res.writeHead(503);
          res.end('{"id":"unavailable","message":"API in maintenance"}');
          return;
        }
        res.end('{"quantity":2,"type":"web","size":"standard-1X"}');
      });
      await new Promise((r) => platform.listen(0, '127.0.0.1', r));
      const base = `http://127.0.0.1:${platform.address().port}`;
      server = await startServer({ extraArgs: ['--backfill', '5m', '--heroku-api-url', base, '--heroku-api-key', 'test-key'] });
      browser = await launch();
      mkdirSync(shots, { recursive: true });
      app = await createApp(server, 'alerting');
    }, { timeout: 120000 });

    after(async () => {
      await browser?.close();
      await server?.stop();
      platform?.close();
    });

    const monitors = () => api(server, '/api/apps/alerting/monitors');

    test('create (with a clear error first), edit and delete a monitor', T, async () => {
      const page = await newPage(browser, server);
      await page.goto(`${server.url}/apps/alerting?range=1h`);
      await waitReady(page);
      await page.waitForSelector('#monitors-empty');

      await page.click('#monitor-new');
      await page.selectOption('#mon-name', 'LATENCY');
      await page.fill('#mon-value', '20');
      await page.click('#mon-save');
      await page.waitForFunction(() => /from 50 to 30000/.test(document.querySelector('#mon-error')?.textContent ?? ''));
      assert.deepEqual(await monitors(), [], 'a refused monitor is not kept');

      await page.fill('#mon-value', '800');
      await page.selectOption('#mon-period', '1');
      await page.selectOption('#mon-notify', '5');
      await page.click('#mon-save');
      await page.waitForSelector('tr[data-name="LATENCY"]');
      assert.match(await page.textContent('tr[data-name="LATENCY"] .threshold'), /≥ 800 ms/);
      let ms = await monitors();
      assert.equal(ms.length, 1);
      assert.deepEqual([ms[0].name, ms[0].value, ms[0].period, ms[0].notification_period, ms[0].action_type], ['LATENCY', 800, 1, 5, 'alert']);

      // A share is entered in percent and kept as a fraction.
      await page.click('#monitor-new');
      await page.selectOption('#mon-name', 'ERROR_RATE');
      await page.fill('#mon-value', '5');
      await page.click('#mon-save');
      await page.waitForSelector('tr[data-name="ERROR_RATE"]');
      ms = await monitors();
      assert.equal(ms.find((m) => m.name === 'ERROR_RATE').value, 0.05);

      // A second LATENCY monitor of web is refused with the reason.
      await page.click('#monitor-new');
      await page.fill('#mon-value', '600');
      await page.click('#mon-save');
      await page.waitForFunction(() => /already has a LATENCY monitor/.test(document.querySelector('#mon-error')?.textContent ?? ''));
      await page.click('.monitor-form button:not([type=submit])');

      await page.click('tr[data-name="LATENCY"] button[data-action="edit"]');
      assert.equal(await page.inputValue('#mon-value'), '800');
      await page.fill('#mon-value', '900');
      await page.click('#mon-save');
      await page.waitForFunction(() => /≥ 900 ms/.test(document.querySelector('tr[data-name="LATENCY"] .threshold')?.textContent ?? ''));
      assert.equal((await monitors()).find((m) => m.name === 'LATENCY').value, 900);

      page.once('dialog', (d) => d.accept());
      await page.click('tr[data-name="ERROR_RATE"] button[data-action="delete"]');
      await page.waitForFunction(() => !document.querySelector('tr[data-name="ERROR_RATE"]'));
      assert.deepEqual((await monitors()).map((m) => m.name), ['LATENCY']);
      await page.context().close();
    });

    test('alert transitions appear as events on the charts', T, async () => {
      // LATENCY ≥ 900 ms over 1 minute (from the test above): 3 minutes of
      // slow traffic in the past half hour, then healthy minutes.
      const t0 = Math.floor(Date.now() / 60000) * 60000 - 30 * 60000;
      for (let m = 0; m < 7; m++) {
        const frames = [];
        for (let i = 0; i < 10; i++) {
          const ms = m >= 1 && m <= 3 ? 2000 : 100;
          frames.push(frame(`at=info method=GET path=/ host=a.example.com request_id=r${m}-${i} fwd="10.0.0.1" dyno=web.1 connect=1ms service=${ms}ms status=200 bytes=10 protocol=https`, { time: new Date(t0 + m * 60000 + i * 3000) }));
        }
        await postDrain(app.drain_url, frames);
      }
      const until = new Date(Date.now() + 60000).toISOString();
      let kinds = [];
      for (let i = 0; i < 60 && !kinds.includes('firing'); i++) {
        const ev = await api(server, `/api/apps/alerting/events?start_time=${new Date(t0 - 60000).toISOString()}&end_time=${until}&step=1m`);
        kinds = (ev.events ?? []).filter((e) => e.kind === 'alert').map((e) => e.detail.split(/[ :]/)[1]);
        await new Promise((r) => setTimeout(r, 500));
      }
      assert.deepEqual(kinds.slice(0, 3), ['pending', 'firing', 'resolved']);

      const page = await newPage(browser, server);
      await page.goto(`${server.url}/apps/alerting?range=1h`);
      await waitReady(page);
      await page.click('.event-list summary');
      const rows = await page.$$eval('table.events tbody tr', (trs) => trs.map((tr) => tr.textContent));
      assert.ok(rows.some((r) => /alert.*LATENCY firing/.test(r)), `event list shows the firing: ${rows}`);
      const lane = await page.$$eval('[data-chart="events"]', (els) => els.map((e) => Number(e.dataset.points)));
      assert.ok(lane[0] >= 2, `events chart draws the alert markers (points ${lane})`);
      await page.waitForFunction(() => /firing|resolved/.test(document.querySelector('tr[data-name="LATENCY"] .status')?.textContent ?? ''));
      await page.locator('[data-chart="events"]').screenshot({ path: join(shots, 'alerts-events.png') });

      // A notification's link pins the window's end (?end=): the page
      // shows the range ending there, with the alert in it.
      const end = new Date(t0 + 20 * 60000).toISOString().replace('.000Z', 'Z');
      await page.goto(`${server.url}/apps/alerting?range=1h&end=${encodeURIComponent(end)}`);
      await waitReady(page);
      assert.match(await page.textContent('.page-head p'), new RegExp(`hour ending ${end.slice(0, 16).replace('T', ' ')} UTC`));
      const pinned = await page.$eval('[data-chart="events"]', (e) => Number(e.dataset.points));
      assert.ok(pinned >= 2, `the pinned window shows the alert (points ${pinned})`);
      await page.locator('#monitors').screenshot({ path: join(shots, 'monitors-panel.png') });
      await page.context().close();
    });

    test('Platform API banner during maintenance, gone after it', T, async () => {
      const res = await fetch(`${server.url}/api/apps/alerting/monitors`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${app.api_token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ action_type: 'scale', name: 'LATENCY', process_type: 'worker', value: 500, min_quantity: 1, max_quantity: 3 }),
      });
      assert.equal(res.status, 201, await res.text());
      let st;
      for (let i = 0; i < 80; i++) {
        st = await api(server, '/api/apps/alerting/autoscaling');
        if (!st.platform_api.available) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.equal(st.platform_api.available, false);
      assert.match(st.platform_api.last_error, /API in maintenance/);

      const page = await newPage(browser, server);
      await page.goto(`${server.url}/apps/alerting?range=1h`);
      await waitReady(page);
      await page.waitForSelector('#platform-banner');
      assert.match(await page.textContent('#platform-banner'), /Platform API unavailable since .*UTC/);
      await page.screenshot({ path: join(shots, 'platform-banner.png'), clip: { x: 0, y: 0, width: 1280, height: 360 } });

      maintenance = false;
      for (let i = 0; i < 120 && !st.platform_api.available; i++) {
        await new Promise((r) => setTimeout(r, 1000));
        st = await api(server, '/api/apps/alerting/autoscaling');
      }
      assert.equal(st.platform_api.available, true, 'the autoscaler resumes by itself');
      assert.equal(st.formations.find((f) => f.process_type === 'worker')?.quantity, 2);
      await page.click('#ctl-refresh');
      await page.waitForFunction(() => !document.querySelector('#platform-banner'));
      await page.context().close();
    });
  });
}
