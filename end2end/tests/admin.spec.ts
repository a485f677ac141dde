// The admin side (issue #15), in real Chromium: an API key shown once, used and revoked; a
// retention policy previewed to the exact count, saved and swept by the CLI, a pinned flow
// kept; members added (initial password once), re-roled and removed; roles per team with the
// team switcher; viewers refused with 403; axe-core (WCAG 2.1 AA) on every admin page; the
// key form by keyboard alone.
import { test, expect, Page, APIRequestContext } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { flowRecord, observations, sendFlow, signIn, uniquePipeline } from './helpers';

const binary = join(resolve(__dirname, '..', '..'), 'target', 'debug', 'flowtrail');
const artifacts = join(__dirname, '..', 'test-results');
// The usage page last: the test goes on with it open.
const ADMIN_PAGES = ['/admin', '/admin/members', '/admin/keys', '/admin/retention', '/admin/dead-letters', '/admin/alerts', '/admin/usage'];

const viewer = () => ({
  email: process.env.FLOWTRAIL_E2E_VIEWER_EMAIL!,
  password: process.env.FLOWTRAIL_E2E_VIEWER_PASSWORD!,
});

// As in dashboard.spec.ts: a WASM panic or a 5xx fails any test.
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

/** Waits until the page is hydrated: forms then go through the WASM, not a full post. */
async function hydrated(page: Page) {
  await expect(page.locator('main[data-hydrated="true"]')).toHaveCount(1);
}

/** axe-core finds no WCAG 2.0/2.1 A or AA violation in the page as it is now. */
async function accessible(page: Page) {
  const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  const found = results.violations.map(
    (v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(' | ')}`,
  );
  expect(found, page.url()).toEqual([]);
}

async function ingestStatus(request: APIRequestContext, key: string, pipeline: string) {
  const answer = await request.post('/api/v1/flows', {
    headers: { Authorization: `Bearer ${key}` },
    data: flowRecord({ pipeline }),
  });
  return answer.status();
}

test('an admin creates an API key shown once, ingests with it, and revokes it', async ({ page, request }) => {
  await signIn(page);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' }).click();
  await expect(page).toHaveURL(/\/admin$/);
  await page.getByRole('link', { name: 'API keys' }).click();
  await expect(page.getByRole('heading', { name: 'API keys', level: 1 })).toBeVisible();
  await hydrated(page);

  const name = `e2e-ingest-${Date.now()}`;
  await page.getByLabel('Name').fill(name);
  await page.getByLabel('Scope').selectOption('ingest');
  await page.getByRole('button', { name: 'Create key' }).click();
  const shown = page.getByLabel('New API key');
  await expect(shown).toHaveValue(/^ftk_[0-9a-f]{48}$/);
  const key = await shown.inputValue();
  await expect(page.getByText('it will not be shown again')).toBeVisible();
  const row = page.getByRole('row').filter({ hasText: name });
  await expect(row).toContainText('ingest');
  await expect(row).toContainText('active');
  await expect(row).toContainText(key.slice(0, 12));
  await accessible(page);
  await shot(page, 'admin-key-created');

  // Shown once: gone after a reload, and nowhere in the page.
  await page.reload();
  await expect(page.getByLabel('New API key')).toHaveCount(0);
  expect(await page.content()).not.toContain(key);

  // It works: a flow sent with it is accepted.
  const pipeline = uniquePipeline('keyed');
  expect(await ingestStatus(request, key, pipeline)).toBe(202);

  // Revoked (with a confirm step), it answers 401 within about a second.
  await hydrated(page);
  await page.getByRole('button', { name: `Revoke ${name}` }).click();
  await expect(page.getByRole('group', { name: /Revoke “e2e-ingest-/ })).toBeFocused();
  await page.getByRole('button', { name: 'Yes, revoke' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'The key was revoked.' })).toBeVisible();
  await expect(page.getByRole('row').filter({ hasText: name })).toContainText('revoked');
  const revokedAt = Date.now();
  await expect
    .poll(() => ingestStatus(request, key, pipeline), { timeout: 2_500, intervals: [100, 200, 250] })
    .toBe(401);
  expect(Date.now() - revokedAt).toBeLessThan(2_500);
});

test('the key form works with the keyboard alone, with a visible focus', async ({ page }) => {
  await signIn(page);
  await page.goto('/admin/keys');
  await hydrated(page);
  const nameField = page.getByLabel('Name');
  // Tab from the top of the page to the form's first field.
  for (let i = 0; i < 30 && !(await nameField.evaluate((el) => el === document.activeElement)); i++) {
    await page.keyboard.press('Tab');
  }
  await expect(nameField).toBeFocused();
  await expect(nameField).toHaveCSS('outline-style', 'solid');
  await page.keyboard.type('keyboard-key');
  await page.keyboard.press('Tab');
  const scope = page.getByLabel('Scope');
  await expect(scope).toBeFocused();
  await page.keyboard.press('ArrowDown');
  await expect(scope).toHaveValue('read');
  await page.keyboard.press('Tab');
  const create = page.getByRole('button', { name: 'Create key' });
  await expect(create).toBeFocused();
  await expect(create).toHaveCSS('outline-style', 'solid');
  await page.keyboard.press('Enter');
  await expect(page.getByLabel('New API key')).toHaveValue(/^ftk_/);
  await expect(page.getByRole('row').filter({ hasText: 'keyboard-key' })).toContainText('read');

  // Revoking too: the confirm step takes the focus, Tab reaches "Yes, revoke".
  await page.getByRole('button', { name: 'Revoke keyboard-key' }).focus();
  await page.keyboard.press('Enter');
  await expect(page.getByRole('group', { name: /Revoke “keyboard-key”/ })).toBeFocused();
  await page.keyboard.press('Tab');
  await expect(page.getByRole('button', { name: 'Yes, revoke' })).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(page.getByRole('row').filter({ hasText: 'keyboard-key' })).toContainText('revoked');
});

test('retention: the preview counts exactly, saving and a sweep delete old flows, a pinned one stays', async ({ page }) => {
  const pipeline = uniquePipeline('old');
  const tenDaysAgo = new Date(Date.now() - 10 * 86_400_000);
  const old = [0, 1, 2].map((i) =>
    flowRecord({
      pipeline,
      startedAt: new Date(tenDaysAgo.getTime() + i * 60_000),
      steps: [{ name: 'judge', kind: 'judge', observations: observations(20, `O${i}`) }],
    }),
  );
  const pinned = flowRecord({ pipeline, startedAt: new Date(tenDaysAgo.getTime() - 60_000) });
  const recent = flowRecord({ pipeline });
  for (const flow of [...old, pinned, recent]) await sendFlow(page.request, flow);

  await signIn(page);
  // The pin button on the flow page (a toggle: aria-pressed).
  await page.goto(`/flows/${pinned.id}`);
  await hydrated(page);
  const pin = page.getByRole('button', { name: 'Pin', exact: true });
  await expect(pin).toHaveAttribute('aria-pressed', 'false');
  await pin.click();
  await expect(pin).toHaveAttribute('aria-pressed', 'true');
  await expect(page.getByText('Pinned: retention never deletes this flow.')).toBeVisible();
  await shot(page, 'flow-pinned');
  await page.reload();
  await expect(page.getByRole('button', { name: 'Pin', exact: true })).toHaveAttribute('aria-pressed', 'true');

  await page.goto('/admin/retention');
  await hydrated(page);
  const save = page.getByRole('button', { name: 'Save' });
  await expect(save).toBeDisabled();
  await page.getByLabel(`Rule for ${pipeline}`).selectOption('days');
  await page.getByLabel(`Days for ${pipeline}`).fill('1');
  await page.getByRole('button', { name: 'Preview' }).click();
  const preview = page.getByRole('region', { name: 'Preview' });
  await expect(preview).toContainText('would delete 3 flows now');
  await expect(preview.getByRole('row').filter({ hasText: pipeline })).toContainText('3');
  await expect(save).toBeEnabled();
  await accessible(page);
  await shot(page, 'admin-retention-preview');

  // Changing the form asks for a new preview before saving.
  await page.getByLabel(`Days for ${pipeline}`).fill('2');
  await expect(save).toBeDisabled();
  await page.getByLabel(`Days for ${pipeline}`).fill('1');
  await expect(save).toBeEnabled();
  await save.click();
  await expect(page.getByRole('status').filter({ hasText: 'Saved.' })).toBeVisible();

  // A flow opened here is kept in this browser (its observations in IndexedDB)...
  await page.goto(`/flows/${old[0].id}?step=0`);
  await expect(page.locator('.observations-status')).toContainText('20 of 20 observations');
  await expect.poll(() => keptSteps(page, old[0].id)).not.toEqual([]);

  // One sweep now, by the CLI on the server's data directory.
  const swept = JSON.parse(
    execFileSync(binary, ['admin', 'sweep', '--data-dir', process.env.FLOWTRAIL_E2E_DATA!]).toString(),
  );
  expect(swept.flows).toBe(3);

  await page.goto('/admin/retention');
  const runs = page.getByRole('table', { name: 'Last sweeps, newest first' });
  await expect(runs.getByRole('row').nth(1).getByRole('cell').nth(2)).toHaveText('3');
  await expect(page.getByLabel(`Days for ${pipeline}`)).toHaveValue('1');
  await accessible(page);

  await page.goto(`/?pipeline=${pipeline}`);
  const rows = page.locator('table.flows-table tbody tr');
  await expect(rows).toHaveCount(2);
  await expect(page.locator(`tr[data-flow-id="${pinned.id}"]`)).toBeVisible();
  await expect(page.locator(`tr[data-flow-id="${recent.id}"]`)).toBeVisible();
  for (const flow of old) expect((await page.request.get(`/api/v1/flows/${flow.id}`)).status()).toBe(404);

  // ...until, online, the server says it is gone: then this browser forgets it too.
  await page.goto(`/flows/${old[0].id}`);
  await expect(page.getByRole('heading', { name: 'Flow not available' })).toBeVisible();
  await expect.poll(() => keptSteps(page, old[0].id)).toEqual([]);
});

/** The keys of flow `id`'s steps in the observations worker's IndexedDB. */
async function keptSteps(page: Page, id: string): Promise<string[]> {
  return page.evaluate(async (flowId) => {
    const db = await new Promise<IDBDatabase>((ok, fail) => {
      const open = indexedDB.open('flowtrail');
      open.onsuccess = () => ok(open.result);
      open.onerror = () => fail(open.error);
    });
    if (!db.objectStoreNames.contains('observations')) {
      db.close();
      return [];
    }
    const keys = await new Promise<IDBValidKey[]>((ok, fail) => {
      const all = db.transaction('observations', 'readonly').objectStore('observations').getAllKeys();
      all.onsuccess = () => ok(all.result);
      all.onerror = () => fail(all.error);
    });
    db.close();
    return keys.map(String).filter((k) => k.startsWith(`${flowId}@`));
  }, id);
}

test('members: added with a password shown once, re-roled, removed; the last admin stays', async ({ page, browser }) => {
  await signIn(page);
  await page.goto('/admin/members');
  await hydrated(page);
  const email = `new-${Date.now()}@flowtrail.test`;
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Role').first().selectOption('member');
  await page.getByRole('button', { name: 'Add member' }).click();
  await expect(page.getByRole('status').filter({ hasText: `${email} is now a member of the team.` })).toBeVisible();
  const password = page.getByLabel('Initial password (shown only this once)');
  await expect(password).toHaveValue(/.{20}/);
  const initial = await password.inputValue();
  await accessible(page);
  await shot(page, 'admin-member-added');
  const row = page.getByRole('row').filter({ hasText: email });
  await expect(row.getByLabel(`Role of ${email}`)).toHaveValue('member');

  // The new account signs in with it.
  const other = await browser.newContext();
  const otherPage = await other.newPage();
  await signIn(otherPage, { email, password: initial });
  await other.close();

  await row.getByLabel(`Role of ${email}`).selectOption('viewer');
  await row.getByRole('button', { name: `Save role of ${email}` }).click();
  await expect(page.getByRole('status').filter({ hasText: `${email} is now a viewer.` })).toBeVisible();

  // The team's only admin cannot lose the role.
  const me = process.env.FLOWTRAIL_E2E_EMAIL!;
  const mine = page.getByRole('row').filter({ hasText: me });
  await mine.getByLabel(`Role of ${me}`).selectOption('viewer');
  await mine.getByRole('button', { name: `Save role of ${me}` }).click();
  await expect(page.getByRole('alert')).toContainText("last admin");
  await page.reload();
  await expect(page.getByRole('row').filter({ hasText: me }).getByLabel(`Role of ${me}`)).toHaveValue('admin');

  await hydrated(page);
  await page.getByRole('button', { name: `Remove ${email}` }).click();
  await page.getByRole('button', { name: 'Yes, remove' }).click();
  await expect(page.getByRole('row').filter({ hasText: email })).toHaveCount(0);
});

test('viewers get 403 on every admin page and cannot pin; anonymous visitors are asked to sign in', async ({ page, browser }) => {
  const flow = flowRecord({ pipeline: uniquePipeline('viewed') });
  await sendFlow(page.request, flow);

  const anonymous = await browser.newContext();
  const anonymousPage = await anonymous.newPage();
  await anonymousPage.goto('/admin/members');
  await expect(anonymousPage).toHaveURL(/\/login\?next=%2Fadmin%2Fmembers/);
  await anonymous.close();

  await signIn(page, viewer());
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' })).toHaveCount(0);
  for (const path of ADMIN_PAGES) {
    const answer = await page.goto(path);
    expect(answer!.status(), path).toBe(403);
    await expect(page.getByRole('heading', { name: 'You need the admin role' })).toBeVisible();
    await expect(page.getByRole('table')).toHaveCount(0);
  }
  await accessible(page);
  await shot(page, 'admin-forbidden');

  await page.goto(`/flows/${flow.id}`);
  const pin = page.getByRole('button', { name: 'Pin', exact: true });
  await expect(pin).toBeDisabled();
  await expect(page.getByText('Viewers cannot pin or unpin flows')).toBeVisible();
});

test('every admin page passes axe-core (WCAG 2.1 AA); usage charts what was sent', async ({ page }) => {
  const pipeline = uniquePipeline('usage');
  await sendFlow(page.request, flowRecord({ pipeline }));
  await signIn(page);
  for (const path of ADMIN_PAGES) {
    const answer = await page.goto(path);
    expect(answer!.status(), path).toBe(200);
    await hydrated(page);
    await accessible(page);
  }
  // Usage (the page is still open): today's row for the pipeline, and a titled bar.
  const today = new Date().toISOString().slice(0, 10);
  await expect(page.getByRole('row').filter({ hasText: pipeline })).toContainText(today);
  await expect(page.getByRole('img', { name: /Flows accepted per day/ })).toBeVisible();
  await expect(page.locator('svg.bars g.bar title').filter({ hasText: `${today}: ` })).toHaveCount(1);
  await expect(page.locator('figcaption')).toContainText('accepted over 30 days');
  await shot(page, 'admin-usage');
  // The range is in the address, and a bad one is said plainly.
  await page.goto(`/admin/usage?since=${today}&until=${today}`);
  await expect(page.locator('figcaption')).toContainText('accepted over 1 day;');
  await page.goto('/admin/usage?since=2026-12-31&until=2026-01-01');
  await expect(page.getByRole('alert')).toContainText('since is after until');
});

test('the team switcher changes the team, and the role that goes with it', async ({ page, request }) => {
  // A second team whose admin key adds our admin as a viewer there.
  const data = process.env.FLOWTRAIL_E2E_DATA!;
  const key = execFileSync(binary, ['admin', 'create-api-key', '--data-dir', data, '--team', 'second', '--name', 'setup', '--scope', 'admin'])
    .toString()
    .trim();
  const added = await request.post('/api/v1/admin/members', {
    headers: { Authorization: `Bearer ${key}` },
    data: { email: process.env.FLOWTRAIL_E2E_EMAIL, role: 'viewer' },
  });
  expect(added.status(), await added.text()).toBe(201);

  await signIn(page);
  await hydrated(page);
  const team = page.getByLabel('Team');
  await expect(team.locator('option:checked')).toHaveText('default (admin)');
  await team.selectOption({ label: 'second (viewer)' });
  await page.getByRole('button', { name: 'Switch' }).click();
  await expect(page.getByLabel('Team').locator('option:checked')).toHaveText('second (viewer)');
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' })).toHaveCount(0);
  expect((await page.goto('/admin'))!.status()).toBe(403);
  await accessible(page);

  await hydrated(page);
  await page.getByLabel('Team').selectOption({ label: 'default (admin)' });
  await page.getByRole('button', { name: 'Switch' }).click();
  await expect(page.getByRole('heading', { name: 'Admin', level: 1 })).toBeVisible();
  await expect(page.getByLabel('Team').locator('option:checked')).toHaveText('default (admin)');
});
