// The pipeline pages in real Chromium: /pipelines lists a pipeline and opens it; on
// /pipelines/{name} a click (and Enter, by keyboard) on a reason's segment of the hourly chart
// opens the flows list filtered to that pipeline, hour and reason — exactly the flow that
// counted it. Both pages pass axe-core's WCAG 2.1 AA rules.
import { test, expect, Page } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { flowRecord, Observation, sendFlow, signIn, uniquePipeline } from './helpers';

async function accessible(page: Page) {
  const results = await new AxeBuilder({ page })
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'])
    .analyze();
  const found = results.violations.map(
    (v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(' | ')}`,
  );
  expect(found, page.url()).toEqual([]);
}

/** `n` candidates, every one rejected for `code`. */
function rejected(n: number, code: string): Observation[] {
  return Array.from({ length: n }, (_, i) => ({
    candidate_id: `${code.slice(0, 3)}${i}`,
    verdict: 'rejected' as const,
    score: null,
    reasons: [{ code }],
    attributes: {},
  }));
}

test('a click on a spike of the reason chart opens the flows that show it', async ({ page }) => {
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('response', (r) => {
    if (r.status() >= 500 && !r.fromServiceWorker()) problems.push(`${r.status()} ${r.url()}`);
  });
  const pipeline = uniquePipeline('insights');
  const hour = 3_600_000;
  const now = Date.now();
  const early = flowRecord({
    pipeline,
    startedAt: new Date(now - 3 * hour),
    steps: [{ name: 'price_filter', kind: 'filter', observations: rejected(4, 'rating_below_threshold') }],
  });
  const spike = flowRecord({
    pipeline,
    startedAt: new Date(now - hour),
    steps: [{ name: 'price_filter', kind: 'filter', observations: rejected(9, 'price_out_of_range') }],
  });
  for (const flow of [early, spike]) await sendFlow(page.request, flow);
  await signIn(page);

  await page.goto('/pipelines');
  const row = page.locator('table.pipelines-table tbody tr').filter({ hasText: pipeline });
  await expect(row).toHaveCount(1);
  await expect(row).toContainText('2'); // two flows in the last 7 days
  await accessible(page);
  await row.getByRole('link', { name: pipeline }).click();
  await expect(page.getByRole('heading', { name: `Pipeline ${pipeline}` })).toBeVisible();

  const since = new Date(now - 6 * hour).toISOString();
  await page.goto(`/pipelines/${pipeline}?since=${encodeURIComponent(since)}&bucket=hour`);
  const segment = page.getByRole('link', { name: /9 × price_out_of_range — open these flows/ });
  await expect(segment).toHaveCount(1);
  await expect(page.getByRole('link', { name: /4 × rating_below_threshold — open these flows/ })).toHaveCount(1);
  await accessible(page);

  await segment.click();
  await expect(page).toHaveURL(
    new RegExp(`[?&]pipeline=${pipeline}&.*step=price_filter&reason=price_out_of_range`),
  );
  await expect(page.getByLabel('Reason')).toHaveValue('price_out_of_range');
  const rows = page.locator('table.flows-table tbody tr');
  await expect(rows).toHaveCount(1);
  await expect(rows.first()).toHaveAttribute('data-flow-id', spike.id);

  // By keyboard: the segment takes focus and Enter follows it.
  await page.goBack();
  const again = page.getByRole('link', { name: /4 × rating_below_threshold — open these flows/ });
  await again.focus();
  await expect(again).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/reason=rating_below_threshold/);
  await expect(rows).toHaveCount(1);
  await expect(rows.first()).toHaveAttribute('data-flow-id', early.id);
  expect(problems).toEqual([]);
});
