// The dashboard's promises, in real Chromium: URL filters and live arrival on the flows list; a
// 5,000-observation step rendered virtualised and filtered in the worker; the candidate
// journey; offline reload from the service worker and IndexedDB; the compare page.
import { test, expect, Page } from '@playwright/test';
import { join } from 'node:path';
import { flowRecord, observations, sendFlow, signIn, uniquePipeline } from './helpers';

const artifacts = join(__dirname, '..', 'test-results');

// A panic in the WASM (a hydration mismatch, say) or a 5xx from the server fails any test, even
// one whose assertions happen to pass. (The service worker's own 503 "You are offline" is
// the offline page, not a failure.)
let problems: string[] = [];
test.beforeEach(({ page }) => {
  problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('response', (r) => {
    if (r.status() >= 500 && !r.fromServiceWorker()) problems.push(`${r.status()} ${r.url()}`);
  });
});
test.afterEach(() => {
  expect(problems).toEqual([]);
});

async function shot(page: Page, name: string) {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

test('the flows list filters by URL and shows new flows as they land', async ({ page }) => {
  const alpha = uniquePipeline('alpha');
  const beta = uniquePipeline('beta');
  const drop = flowRecord({
    pipeline: alpha,
    tags: { env: 'prod' },
    steps: [{ name: 'price_filter', kind: 'filter', observations: observations(40) }],
  });
  await sendFlow(page.request, drop);
  await sendFlow(page.request, flowRecord({ pipeline: alpha, tags: { env: 'dev' } }));
  await sendFlow(page.request, flowRecord({ pipeline: beta, tags: { env: 'prod' } }));

  await signIn(page);
  const rows = page.locator('table.flows-table tbody tr');

  await page.goto(`/?pipeline=${alpha}`);
  await expect(rows).toHaveCount(2);
  await expect(rows.filter({ hasText: beta })).toHaveCount(0);

  // Tags, and "a filter step eliminated more than 50 %", combine; the form keeps the values.
  await page.goto(`/?pipeline=${alpha}&tag=env:prod&step_kind=filter&min_eliminated=50%25`);
  await expect(rows).toHaveCount(1);
  await expect(rows.first()).toHaveAttribute('data-flow-id', drop.id);
  await expect(rows.first()).toContainText('price_filter');
  await expect(page.getByLabel('Eliminated ≥ (share or %)')).toHaveValue('50%');
  // The download holds what the filters select, in the signed-in session.
  const csv = page.getByRole('link', { name: 'CSV', exact: true });
  await expect(csv).toHaveAttribute('href', new RegExp(`^/api/v1/export\\?format=csv&level=flows&pipeline=${alpha}&`));
  const exported = await page.request.get((await csv.getAttribute('href'))!);
  expect(exported.status()).toBe(200);
  const lines = (await exported.text()).trim().split('\n');
  expect(lines).toHaveLength(2);
  expect(lines[1]).toContain(drop.id);
  await page.goto(`/?pipeline=${alpha}&tag=env:staging`);
  await expect(page.getByText('No flow matches these filters.')).toBeVisible();

  // Submitting the form puts the filters in the URL.
  await page.goto('/');
  await page.getByLabel('Pipeline').fill(beta);
  await page.getByRole('button', { name: 'Filter' }).click();
  await expect(page).toHaveURL(new RegExp(`pipeline=${beta}`));
  await expect(rows).toHaveCount(1);

  // Live: a flow sent while the list is open appears without a reload; another pipeline's
  // flow does not.
  await expect(page.getByRole('status').filter({ hasText: 'Live' })).toBeVisible();
  const live = flowRecord({ pipeline: beta, tags: { env: 'prod' } });
  await sendFlow(page.request, live);
  await sendFlow(page.request, flowRecord({ pipeline: alpha }));
  await expect(page.locator(`tr[data-flow-id="${live.id}"]`)).toBeVisible();
  await expect(rows).toHaveCount(2);
  await shot(page, 'flows-live');
});

test('a 5,000-observation step renders virtualised, filters, sorts and opens a journey', async ({ page }) => {
  const all = observations(5000);
  const record = flowRecord({
    pipeline: uniquePipeline('big'),
    steps: [
      { name: 'catalog_search', kind: 'retrieve', observations: [], candidates_in: 5000 },
      { name: 'price_and_rating_filter', kind: 'filter', observations: all },
    ],
  });
  await sendFlow(page.request, record);
  await signIn(page);
  await page.goto(`/flows/${record.id}?step=1`);

  const status = page.locator('.observations-status');
  await expect(status).toContainText('5,000 of 5,000 observations');
  await expect(status).toHaveAttribute('data-source', 'network');
  const table = page.getByRole('table');
  const rows = table.locator('tbody tr.row');
  // Virtualised: only a window of rows is in the page.
  const rendered = await rows.count();
  expect(rendered).toBeGreaterThan(10);
  expect(rendered).toBeLessThan(400);
  await expect(rows.first()).toContainText('C00000');

  // Text filter (an <input type="search">): one candidate.
  const search = page.getByRole('searchbox', { name: 'Filter' });
  await search.fill('c04999');
  await expect(status).toContainText('1 of 5,000 observations');
  await expect(rows).toHaveCount(1);
  await expect(rows.first()).toContainText('C04999');
  await search.fill('');

  // Verdict, reason code, attribute and score, each against the truth computed here.
  const truth = (f: (o: (typeof all)[number]) => boolean) => all.filter(f).length.toLocaleString('en-US');
  await page.getByLabel('Verdict').selectOption('kept');
  await expect(status).toContainText(`${truth((o) => o.verdict === 'kept')} of 5,000`);
  await page.getByLabel('Verdict').selectOption('');
  await page.getByLabel('Reason code').selectOption('rating_below_threshold');
  await expect(status).toContainText(
    `${truth((o) => o.reasons.some((r) => r.code === 'rating_below_threshold'))} of 5,000`,
  );
  await page.getByLabel('Reason code').selectOption('');
  await page.getByLabel('Attribute').fill('price<10');
  await expect(status).toContainText(`${truth((o) => (o.attributes.price as number) < 10)} of 5,000`);
  await page.getByLabel('Score ≥').fill('0.99');
  await expect(status).toContainText(
    `${truth((o) => (o.attributes.price as number) < 10 && o.score !== null && o.score >= 0.99)} of 5,000`,
  );
  await page.getByLabel('Attribute').fill('');
  await page.getByLabel('Score ≥').fill('');
  await expect(status).toContainText('5,000 of 5,000');

  // Sorting by score, highest first; unscored rows last.
  await table.getByRole('button', { name: 'Score' }).click();
  const best = [...all].filter((o) => o.score !== null).sort((a, b) => b.score! - a.score! || a.candidate_id.localeCompare(b.candidate_id))[0];
  await expect(table.locator('th[aria-sort="descending"]')).toContainText('Score');
  await expect(rows.first()).toContainText(best.candidate_id);

  // Scrolling to the end brings the last rows into the window.
  await table.getByRole('button', { name: 'Candidate' }).click();
  await expect(table.locator('th[aria-sort="ascending"]')).toContainText('Candidate');
  await page.locator('.table-scroll.virtual').evaluate((el) => el.scrollTo(0, el.scrollHeight));
  await expect(rows.filter({ hasText: 'C04999' })).toBeVisible();

  // Keyboard: arrow keys move between candidates.
  await rows.filter({ hasText: 'C04998' }).getByRole('button').focus();
  await page.keyboard.press('ArrowDown');
  await expect(rows.filter({ hasText: 'C04999' }).getByRole('button')).toBeFocused();

  // The candidate's journey: absent from nothing, rejected at the filter with its reason.
  await rows.filter({ hasText: 'C04999' }).getByRole('button').click();
  const journey = page.getByRole('region', { name: 'Candidate journey' });
  await expect(journey).toContainText('C04999');
  await expect(journey).toContainText('Eliminated at #1');
  await expect(journey).toContainText('rating_below_threshold');
  await shot(page, 'flow-5000');
  // The journey is in the address: a reload (or a shared link) opens it again.
  await expect(page).toHaveURL(/[?&]candidate=C04999/);
  await page.reload();
  await expect(page.getByRole('region', { name: 'Candidate journey' })).toContainText('Eliminated at #1');
  // Hydrated (the worker has answered) before clicking, so the button has its handler.
  await expect(status).toContainText('5,000 of 5,000');
  await page.getByRole('region', { name: 'Candidate journey' }).getByRole('button', { name: /close/i }).click();
  await expect(page.getByRole('region', { name: 'Candidate journey' })).toHaveCount(0);
  await expect(page).not.toHaveURL(/candidate=/);
});

test('a flow opened once stays browsable and filterable offline, after a reload', async ({ page, context }) => {
  const record = flowRecord({
    pipeline: uniquePipeline('offline'),
    steps: [{ name: 'judge', kind: 'judge', observations: observations(300, 'K') }],
  });
  await sendFlow(page.request, record);
  await signIn(page);
  await page.goto(`/flows/${record.id}?step=0`);
  const status = page.locator('.observations-status');
  await expect(status).toContainText('300 of 300 observations');
  // The service worker takes control; a reload through it keeps the page for later.
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, undefined, { timeout: 15_000 });
  await page.reload();
  await expect(status).toContainText('300 of 300 observations');
  await expect(status).toHaveAttribute('data-source', 'cache');

  await context.setOffline(true);
  await page.reload();
  await expect(page.getByRole('status').filter({ hasText: 'Offline' })).toBeVisible();
  await expect(page.getByRole('heading', { name: record.pipeline })).toBeVisible();
  await expect(status).toContainText('300 of 300 observations');
  await expect(status).toHaveAttribute('data-source', 'cache');
  await page.getByRole('searchbox', { name: 'Filter' }).fill('K00299');
  await expect(status).toContainText('1 of 300 observations');
  await expect(page.getByRole('table').locator('tbody tr.row')).toHaveCount(1);
  await shot(page, 'flow-offline');

  // A page never opened says it is offline instead of failing.
  await page.goto('/flows/01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b11').catch(() => undefined);
  await expect(page.getByRole('heading', { name: 'You are offline' })).toBeVisible();
  await context.setOffline(false);
});

test('a running flow\'s observations are never kept: once it finishes, the new ones show, online and offline', async ({ page, context }) => {
  const headers = { authorization: `Bearer ${process.env.FLOWTRAIL_E2E_KEY}` };
  const running = flowRecord({
    pipeline: uniquePipeline('versions'),
    status: 'running',
    steps: [{ name: 'judge', kind: 'judge', observations: observations(30, 'R') }],
  });
  (running as Record<string, unknown>).ended_at = null;
  await sendFlow(page.request, running);
  await signIn(page);
  await page.goto(`/flows/${running.id}?step=0`);
  const status = page.locator('.observations-status');
  await expect(status).toContainText('30 of 30 observations');
  await expect(status).toHaveAttribute('data-source', 'network');

  // The finished version replaces the step with other observations.
  const finished = {
    ...flowRecord({
      pipeline: running.pipeline,
      steps: [{ name: 'judge', kind: 'judge', observations: observations(40, 'K') }],
    }),
    id: running.id,
    version: 2,
  };
  const sent = await page.request.post('/api/v1/flows', { data: finished, headers });
  expect(sent.status(), await sent.text()).toBe(202);
  await expect
    .poll(async () => (await (await page.request.get(`/api/v1/flows/${running.id}`, { headers })).json()).version, {
      timeout: 20_000,
    })
    .toBe(2);

  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, undefined, { timeout: 15_000 });
  await page.reload();
  await expect(status).toContainText('40 of 40 observations');
  const search = page.getByRole('searchbox', { name: 'Filter' });
  await search.fill('R00001');
  await expect(status).toContainText('0 of 40 observations');
  await search.fill('K00001');
  await expect(status).toContainText('1 of 40 observations');
  // Reopened: the finished version's copy is kept and is the one shown.
  await page.reload();
  await expect(status).toContainText('40 of 40 observations');
  await expect(status).toHaveAttribute('data-source', 'cache');

  await context.setOffline(true);
  await page.reload();
  await expect(page.getByRole('status').filter({ hasText: 'Offline' })).toBeVisible();
  await expect(status).toContainText('40 of 40 observations');
  await expect(status).toHaveAttribute('data-source', 'cache');
  await search.fill('R00001');
  await expect(status).toContainText('0 of 40 observations');
  await context.setOffline(false);
});

test('the compare page shows two runs side by side, step by step', async ({ page }) => {
  const pipeline = uniquePipeline('compare');
  const good = observations(20);
  const bad = observations(20).map((o) =>
    o.candidate_id === 'C00003'
      ? { ...o, verdict: 'selected' as const, reasons: [], score: 0.97 }
      : o,
  );
  const steps = (obs: typeof good) => [
    { name: 'catalog_search', kind: 'retrieve', observations: [], candidates_in: 20 },
    { name: 'llm_judge', kind: 'judge', observations: obs },
  ];
  const a = flowRecord({ pipeline, steps: steps(good), startedAt: new Date(Date.now() - 60_000) });
  const b = flowRecord({ pipeline, steps: steps(bad) });
  await sendFlow(page.request, a);
  await sendFlow(page.request, b);
  await signIn(page);

  // From the newer flow, "compare with the previous run" leads to /flows/{a}/compare/{b}.
  await page.goto(`/flows/${b.id}`);
  // Hydrated (the worker has answered) before clicking, so the router handles the link.
  await expect(page.locator('.observations-status')).toBeVisible();
  await page.getByRole('link', { name: 'Compare with the previous run' }).click();
  await expect(page).toHaveURL(new RegExp(`/flows/${a.id}/compare/${b.id}`));

  await expect(page.getByRole('heading', { name: 'Compare flows' })).toBeVisible();
  await expect(page.getByText('1 of 2 steps differ')).toBeVisible();
  const judge = page.getByRole('list', { name: 'Steps compared' }).getByRole('listitem').filter({ hasText: 'llm_judge' });
  const changed = judge.getByRole('table').filter({ hasText: 'Verdicts that changed' });
  await expect(changed.getByRole('row').filter({ hasText: 'C00003' })).toContainText('rejected');
  await expect(changed.getByRole('row').filter({ hasText: 'C00003' })).toContainText('selected');
  await expect(changed.getByRole('row').filter({ hasText: 'C00003' })).toContainText('rating_below_threshold');
  const same = page.getByRole('list', { name: 'Steps compared' }).getByRole('listitem').filter({ hasText: 'catalog_search' });
  await expect(same).toContainText('same');
  await shot(page, 'compare');

  // An unknown flow is said plainly.
  await page.goto(`/flows/${a.id}/compare/01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b11`);
  await expect(page.getByRole('alert')).toContainText('not in your team');
});
