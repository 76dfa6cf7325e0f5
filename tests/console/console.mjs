// Drives the web console in headless Chromium (Debian's) with
// playwright-core, as tests/console.rs sets it up. Every check throws on
// failure (the process exits non-zero); the last line printed is a JSON
// report the Rust side checks too.
//
// Environment: CONSOLE_URL, CONSOLE_TOKEN (admin), CONSOLE_EXPECT (JSON:
// aggregate_type, aggregate_id, balances after each event, letter_id,
// user_token), CONSOLE_SCREENSHOTS (folder), CHROMIUM (executable),
// PLAYWRIGHT (the playwright-core package folder).
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const base = env('CONSOLE_URL');
const adminToken = env('CONSOLE_TOKEN');
const expect = JSON.parse(env('CONSOLE_EXPECT'));
const shots = env('CONSOLE_SCREENSHOTS');
const { chromium } = await import(pathToFileURL(path.join(env('PLAYWRIGHT'), 'index.mjs')).href);

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

const browser = await chromium.launch({
  executablePath: env('CHROMIUM'),
  args: ['--headless', '--no-sandbox'],
});
const report = { steps_checked: 0 };
const pageErrors = [];
try {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()); });
  // the markup in mallory's nickname would call this if it ever ran
  await page.exposeFunction('xss', () => { report.xss = true; });
  const shot = (name) => page.screenshot({ path: path.join(shots, name), fullPage: true });

  // ---- sign in: a wrong token is refused, the admin token is taken
  await page.goto(`${base}/console`);
  await page.waitForSelector('#view-signin:not([hidden])');
  await page.fill('#token-input', 'not-a-token');
  await page.click('#token-submit');
  await page.waitForSelector('#signin-error:not([hidden])');
  check((await page.textContent('#signin-error')).includes('refused'), 'a bad token is refused');
  await page.waitForSelector('#password-form:not([hidden])');
  await shot('signin.png');
  await page.fill('#token-input', adminToken);
  await page.click('#token-submit');
  await page.waitForSelector('#view-events:not([hidden])');
  await page.waitForSelector('#ev-table tbody tr');

  // ---- the event log: every event is there, payloads are text
  const markup = page.locator('#ev-table tbody td.payload', { hasText: '<img src=x onerror=xss()>' });
  await markup.first().waitFor();
  check((await page.locator('#ev-table img').count()) === 0, 'no markup from a payload became an element');
  await page.selectOption('#ev-aggregate-type', 'account');
  await page.fill('#ev-event-type', 'PointsCharged');
  await page.click('#ev-search');
  await page.waitForFunction(() => [...document.querySelectorAll('#ev-table tbody tr')].every(
    (tr) => tr.textContent.includes('PointsCharged')) && document.querySelectorAll('#ev-table tbody tr').length > 0);
  await page.fill('#ev-event-type', '');
  await page.fill('#ev-aggregate-id', expect.aggregate_id);
  await page.click('#ev-search');
  await page.waitForFunction((n) => document.querySelectorAll('#ev-table tbody tr').length === n, expect.balances.length);
  await shot('events.png');

  // ---- find the aggregate and step through its history
  await page.click('#ev-table tbody tr:first-child a.agg');
  await page.waitForSelector('#view-aggregate:not([hidden]) #agg-body:not([hidden])');
  const shown = async () => ({
    seq: Number(await page.textContent('#state-seq')),
    state: JSON.parse(await page.getAttribute('#state-json', 'data-json')),
  });
  const last = expect.balances.length;
  await page.waitForFunction((n) => document.querySelector('#state-seq').textContent === String(n), last);
  let now = await shown();
  check(now.state.balance === expect.balances[last - 1], `the last state holds balance ${expect.balances[last - 1]}: ${JSON.stringify(now.state)}`);
  await shot('aggregate-last.png');
  await page.click('#step-first');
  await page.waitForFunction(() => document.querySelector('#state-seq').textContent === '1');
  await shot('aggregate-first.png');
  for (let seq = 1; seq <= last; seq++) {
    if (seq > 1) {
      await page.click('#step-next');
      await page.waitForFunction((n) => document.querySelector('#state-seq').textContent === String(n), seq);
    }
    now = await shown();
    check(now.seq === seq, `step ${seq} shown`);
    check(now.state.version === seq, `the state after event ${seq} is at version ${seq}: ${JSON.stringify(now.state)}`);
    check(now.state.balance === expect.balances[seq - 1], `balance after event ${seq} is ${expect.balances[seq - 1]}: ${JSON.stringify(now.state)}`);
    const current = await page.textContent('#agg-events li.current');
    check(current.includes(`#${seq}`), `the timeline marks event ${seq}: ${current}`);
    if (seq > 1) {
      check((await page.locator('#state-json .j-changed').count()) > 0, `what event ${seq} changed is marked`);
    }
    report.steps_checked += 1;
  }
  check(await page.isDisabled('#step-next'), 'no step after the last event');

  // ---- projections: the table and both charts
  await page.click('nav a[data-view=projections]');
  await page.waitForSelector('#proj-table tbody tr[data-projection=accounts]');
  await page.waitForSelector('#lag-chart svg path.series', { state: 'attached', timeout: 20000 });
  await page.waitForSelector('#rate-chart svg path.series', { state: 'attached' });
  await shot('projections.png');

  // ---- dead letters: retry the one the test made
  await page.click('nav a[data-view=letters]');
  const row = page.locator(`#letters-table tbody tr[data-letter-id="${expect.letter_id}"]`);
  await row.waitFor();
  await shot('letters.png');
  await row.locator('button[data-action=retry]').click();
  await page.waitForSelector('#letters-result:not([hidden])');
  const result = await page.textContent('#letters-result');
  check(result.startsWith('Retried 1 letter.'), `the retry went through: ${result}`);
  await row.waitFor({ state: 'detached' });
  await shot('letters-retried.png');

  // ---- webhooks and their deliveries
  await page.click('nav a[data-view=webhooks]');
  await page.waitForSelector('#hooks-table tbody tr');
  await page.click('#hooks-table tbody tr:first-child button');
  await page.waitForSelector('#deliveries:not([hidden]) #deliveries-table tbody tr');
  const delivered = await page.locator('#deliveries-table td.status-delivered').count();
  check(delivered === 2, `lee's two charges show as delivered to the receiver: ${delivered}`);
  await shot('webhooks.png');

  // ---- the live tail: a command posted now shows within about a second
  await page.click('nav a[data-view=tail]');
  await page.waitForSelector('#view-tail:not([hidden])');
  // the tail has read up to the head before the command goes
  await page.waitForTimeout(700);
  const key = `tail-${Date.now()}`;
  const answer = await fetch(`${base}/v1/accounts/me/charge`, {
    method: 'POST',
    headers: { authorization: `Bearer ${expect.user_token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ amount: 5, idempotency_key: key }),
  });
  check(answer.ok, `the charge is accepted: ${answer.status}`);
  const answered = Date.now();
  await page.locator('#tail-table tbody tr', { hasText: key }).waitFor({ timeout: 10000 });
  report.tail_latency_ms = Date.now() - answered;
  await shot('tail.png');

  // ---- a token that stops working sends the page back to sign in
  await page.evaluate(() => sessionStorage.setItem('tessera.console.token', 'expired'));
  await page.reload();
  await page.waitForSelector('#view-signin:not([hidden])');
  await page.waitForSelector('#signin-error:not([hidden])');
  check((await page.textContent('#signin-error')).includes('401'), 'a 401 signs out');

  check(!report.xss, 'no payload ran as script');
  const unexpected = pageErrors.filter((e) => !e.includes('401'));
  check(unexpected.length === 0, `no script error on the page: ${unexpected.join('; ')}`);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
