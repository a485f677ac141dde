// Every page that is not an admin page (those are in admin.spec.ts) passes axe-core's WCAG
// 2.0/2.1 A and AA rules as a user sees it: the sign-in page, the flows list, a flow with a
// step open and a journey, the compare page, and the not-found page.
import { test, expect, Page } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { flowRecord, observations, sendFlow, signIn, uniquePipeline } from './helpers';

async function accessible(page: Page) {
  const results = await new AxeBuilder({ page })
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'])
    .analyze();
  const found = results.violations.map(
    (v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(' | ')}`,
  );
  expect(found, page.url()).toEqual([]);
}

test('the sign-in, list, flow, journey, compare and not-found pages pass axe-core (WCAG 2.1 AA)', async ({ page }) => {
  await page.goto('/login');
  await expect(page.getByRole('button', { name: 'Sign in' })).toBeVisible();
  await accessible(page);

  const pipeline = uniquePipeline('a11y');
  const steps = [
    { name: 'retrieve', kind: 'retrieve', observations: observations(30, 'R') },
    { name: 'judge', kind: 'judge', observations: observations(30, 'R') },
  ];
  const a = flowRecord({ pipeline, steps });
  const b = flowRecord({ pipeline, steps, status: 'failed' });
  for (const flow of [a, b]) await sendFlow(page.request, flow);
  await signIn(page);

  await page.goto(`/?pipeline=${pipeline}`);
  await expect(page.locator('table.flows-table tbody tr')).toHaveCount(2);
  await accessible(page);

  await page.goto(`/flows/${a.id}?step=1`);
  await expect(page.locator('.observations-status')).toContainText('30 of 30 observations');
  await accessible(page);
  await page.goto(`/flows/${a.id}?step=1&candidate=R00001`);
  await expect(page.getByText('R00001').first()).toBeVisible();
  await accessible(page);

  await page.goto(`/flows/${a.id}/compare/${b.id}`);
  await expect(page.getByRole('heading').first()).toBeVisible();
  await page.waitForLoadState('networkidle');
  await accessible(page);

  await page.goto('/no/such/page');
  await expect(page.getByRole('heading', { name: 'Not found' })).toBeVisible();
  await accessible(page);
});
