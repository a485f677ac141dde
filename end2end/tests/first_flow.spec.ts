// The foundation's promise: a flow sent by the SDK appears in the signed-in dashboard, and the
// flow page shows why it chose its output — the filter step and a rejected candidate's reason.
import { test, expect, Page } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';

const root = resolve(__dirname, '..', '..');
const example = join(root, 'target', 'debug', 'examples', 'competitor_selection');

async function signIn(page: Page) {
  await page.goto('/');
  await expect(page).toHaveURL(/\/login/);
  await page.getByLabel('E-mail').fill(process.env.FLOWTRAIL_E2E_EMAIL!);
  await page.getByLabel('Password').fill(process.env.FLOWTRAIL_E2E_PASSWORD!);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('heading', { name: 'Flows' })).toBeVisible();
}

test('pages need a session, and a wrong password is refused', async ({ page }) => {
  await page.goto('/flows/01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b11');
  await expect(page).toHaveURL(/\/login\?next=/);
  await page.getByLabel('E-mail').fill(process.env.FLOWTRAIL_E2E_EMAIL!);
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toContainText('Wrong e-mail or password');
});

test('a flow sent by the SDK shows its filter step and why a candidate was rejected', async ({ page }, testInfo) => {
  await signIn(page);

  // Run the real example against the live server (seed 1 drifts and picks the wrong product).
  const output = execFileSync(example, ['--seed', '1', '--runs', '1'], {
    env: {
      ...process.env,
      FLOWTRAIL_URL: process.env.FLOWTRAIL_E2E_URL,
      FLOWTRAIL_API_KEY: process.env.FLOWTRAIL_E2E_KEY,
    },
  }).toString();
  const flowId = /flow ([0-9a-f-]{36})/.exec(output)?.[1];
  expect(flowId, output).toBeTruthy();

  // 202 means queued: wait until the worker has made it queryable (the page's session works
  // for the API too).
  await expect
    .poll(async () => (await page.request.get(`/api/v1/flows/${flowId}`)).status(), { timeout: 20_000 })
    .toBe(200);

  await page.goto('/');
  await page.getByRole('link', { name: 'competitor_selection' }).first().click();
  await expect(page).toHaveURL(new RegExp(`/flows/${flowId}`));

  // The steps in order, with kinds and counts.
  const steps = page.getByRole('list', { name: 'Steps' });
  await expect(steps.getByRole('listitem').filter({ hasText: 'keyword_generation' })).toBeVisible();
  const filterStep = steps.getByRole('link', { name: /price_and_rating_filter/ });
  await expect(filterStep).toContainText('filter');
  await expect(filterStep).toContainText('→');

  await filterStep.click();
  await expect(page).toHaveURL(/step=2/);
  const table = page.getByRole('table');
  await expect(table).toBeVisible();
  const rejected = table.getByRole('row').filter({ hasText: 'rejected' });
  await expect(rejected.first()).toBeVisible();
  await expect(rejected.first()).toContainText(/price_out_of_range|rating_below_threshold/);

  // The filter is a search box and narrows the rows in the browser (proves hydration).
  const search = page.getByRole('searchbox', { name: 'Filter' });
  await search.fill('rating_below_threshold');
  await expect(table.getByRole('row').filter({ hasText: 'price_out_of_range' })).toHaveCount(0);
  await expect(table.getByRole('row').filter({ hasText: 'rating_below_threshold' }).first()).toBeVisible();
  await expect(page.getByText(/ of \d+ observations/)).toBeVisible();

  await page.screenshot({ path: testInfo.outputPath('flow-page.png'), fullPage: true });
  await page.screenshot({ path: join(__dirname, '..', 'test-results', 'flow-page.png'), fullPage: true });
});
