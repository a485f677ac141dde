// Browser benchmark: filter time of the observations worker at 5,000 and 50,000 rows, the
// round trip from a keystroke to the updated table, and the IndexedDB reopen time. Prints
// its figures; asserts only that the work was done (the targets are read by people).
import { test, expect, Page } from '@playwright/test';
import { flowRecord, observations, sendFlow, signIn, uniquePipeline } from '../tests/helpers';

// Consecutive needles match different counts, so each one changes the table.
const NEEDLES = ['', 'price_out', 'c0', 'laptop', 'c049', 'zzz', 'rating 3.1', 'c01'];
const ROUNDS = 3;

function stats(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return `p50 ${at(0.5).toFixed(2)} ms, p95 ${at(0.95).toFixed(2)} ms, max ${sorted[sorted.length - 1].toFixed(2)} ms (n=${values.length})`;
}

/** Types `text` into the filter; answers the worker's filter time and the page round trip. */
async function filterOnce(page: Page, text: string): Promise<[number, number]> {
  return page.evaluate(async (text) => {
    const input = document.querySelector('input[type=search]') as HTMLInputElement;
    const status = document.querySelector('.observations-status') as HTMLElement;
    const before = status.getAttribute('data-filter-ms') + '|' + status.textContent;
    const start = performance.now();
    const done = new Promise<number>((resolve) => {
      const observer = new MutationObserver(() => {
        const now = status.getAttribute('data-filter-ms') + '|' + status.textContent;
        if (now !== before) {
          observer.disconnect();
          requestAnimationFrame(() => resolve(performance.now() - start));
        }
      });
      observer.observe(status, { attributes: true, childList: true, subtree: true, characterData: true });
    });
    input.value = text;
    input.dispatchEvent(new Event('input', { bubbles: true }));
    const roundTrip = await Promise.race([done, new Promise<number>((r) => setTimeout(() => r(-1), 10_000))]);
    return [Number(status.getAttribute('data-filter-ms')), roundTrip] as [number, number];
  }, text);
}

for (const n of [5_000, 50_000]) {
  test(`filter ${n.toLocaleString('en-US')} rows in the worker; reopen from IndexedDB`, async ({ page }) => {
    const record = flowRecord({
      pipeline: uniquePipeline(`bench${n}`),
      steps: [{ name: 'filter', kind: 'filter', observations: observations(n) }],
    });
    await sendFlow(page.request, record);
    await signIn(page);
    await page.goto(`/flows/${record.id}?step=0`);
    const status = page.locator('.observations-status');
    const total = n.toLocaleString('en-US');
    await expect(status).toContainText(`${total} of ${total} observations`, { timeout: 60_000 });
    const networkLoad = Number(await status.getAttribute('data-load-ms'));

    const filter: number[] = [];
    const roundTrip: number[] = [];
    let previous = '';
    for (let round = 0; round < ROUNDS; round++) {
      for (const needle of NEEDLES) {
        // The same text twice in a row would not change anything.
        if (needle === previous) continue;
        const [f, r] = await filterOnce(page, needle);
        expect(r).toBeGreaterThanOrEqual(0);
        filter.push(f);
        roundTrip.push(r);
        previous = needle;
      }
    }
    await filterOnce(page, '');
    await expect(status).toContainText(`${total} of ${total} observations`);

    const reopen: number[] = [];
    for (let i = 0; i < 15; i++) {
      await page.reload();
      await expect(status).toHaveAttribute('data-source', 'cache', { timeout: 60_000 });
      reopen.push(Number(await status.getAttribute('data-load-ms')));
    }
    console.log(`[bench] ${total} rows: first load from the network ${networkLoad.toFixed(1)} ms`);
    console.log(`[bench] ${total} rows: filter in the worker: ${stats(filter)}`);
    console.log(`[bench] ${total} rows: keystroke to updated table (page round trip): ${stats(roundTrip)}`);
    console.log(`[bench] ${total} rows: reopen from IndexedDB (read + parse): ${stats(reopen)}`);
  });
}
