// Headless-Chromium test of the /ops dashboard, driven by tests/tests/ops.rs.
//
// Environment: OPS_URL (the app's origin), OPS_PASSWORD, REQUEUE_ID (a dead event to
// requeue), SCREENSHOT_DIR, CHROMIUM (default /usr/bin/chromium).
// Opens /ops with HTTP Basic auth (user "ops"), reads the queue counts, the chart's bars
// and legend, the dead-letter rows; screenshots; clicks "Requeue" on REQUEUE_ID; reads the
// page it lands on; screenshots again. Prints one JSON object on stdout for the Rust test
// to check against the database. Any failure exits non-zero with the reason on stderr.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const base = env('OPS_URL');
const password = env('OPS_PASSWORD');
const requeueId = env('REQUEUE_ID');
const shots = env('SCREENSHOT_DIR');
mkdirSync(shots, { recursive: true });

const STATUSES = ['pending', 'processing', 'failed', 'dead', 'done'];

async function readPage(page) {
  const counts = {};
  for (const s of STATUSES) {
    counts[s] = Number(await page.textContent(`[data-testid="count-${s}"]`));
  }
  const bars = await page.$$eval('#volume-chart rect.bar', (els) =>
    els.map((e) => ({ domain: e.dataset.domain, hour: e.dataset.hour, count: Number(e.dataset.count),
                      height: Number(e.getAttribute('height')), tooltip: e.querySelector('title')?.textContent })));
  const legend = await page.$$eval('#volume-chart g.legend', (els) =>
    Object.fromEntries(els.map((e) => [e.dataset.domain, Number(e.dataset.total)])));
  const chartBox = await page.locator('#volume-chart').boundingBox();
  const dead = await page.$$eval('tr.dead-row', (rows) =>
    rows.map((r) => ({ id: r.dataset.eventId, error: r.querySelector('td.error')?.textContent ?? '' })));
  const deadTotal = Number(await page.textContent('[data-testid="dead-total"]'));
  const notice = (await page.$('#notice')) ? await page.textContent('#notice') : null;
  return { counts, bars, legend, chart_visible: !!chartBox && chartBox.width > 100 && chartBox.height > 50,
           dead, dead_total: deadTotal, notice, url: page.url() };
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--no-first-run'],
});
try {
  const context = await browser.newContext({
    httpCredentials: { username: 'ops', password },
    viewport: { width: 1280, height: 1500 },
  });
  const page = await context.newPage();
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });

  const resp = await page.goto(`${base}/ops`);
  if (!resp || resp.status() !== 200) throw new Error(`GET /ops answered ${resp && resp.status()}`);
  const title = await page.title();
  const before = await readPage(page);
  await page.screenshot({ path: join(shots, 'ops-before.png'), fullPage: true });

  const button = page.locator(`tr.dead-row[data-event-id="${requeueId}"] button[data-testid="requeue"]`);
  if ((await button.count()) !== 1) throw new Error(`no requeue button for ${requeueId}`);
  const [nav] = await Promise.all([page.waitForNavigation(), button.click()]);
  const after = await readPage(page);
  await page.screenshot({ path: join(shots, 'ops-after.png'), fullPage: true });

  console.log(JSON.stringify({ title, before, after, landed_status: nav ? nav.status() : null,
                               console_errors: consoleErrors, browser: browser.version() }));
} finally {
  await browser.close();
}
