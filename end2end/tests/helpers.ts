// Shared helpers of the browser tests: sign-in, and flows built and sent through the public
// API (with the API key global-setup created), so every assertion compares to a known truth.
import { expect, Page, APIRequestContext } from '@playwright/test';
import { randomUUID } from 'node:crypto';

/** Signs in as the admin global-setup made, or as `who`. */
export async function signIn(
  page: Page,
  who: { email: string; password: string } = {
    email: process.env.FLOWTRAIL_E2E_EMAIL!,
    password: process.env.FLOWTRAIL_E2E_PASSWORD!,
  },
) {
  await page.goto('/login');
  await page.getByLabel('E-mail').fill(who.email);
  await page.getByLabel('Password').fill(who.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('heading', { name: 'Flows' })).toBeVisible();
  // The list, fetched by the browser after the client-side redirect, loads without an error.
  await expect(page.locator('.flows .loading')).toHaveCount(0);
  await expect(page.getByRole('alert')).toHaveCount(0);
}

export type Observation = {
  candidate_id: string;
  verdict: 'kept' | 'rejected' | 'selected';
  score: number | null;
  reasons: { code: string; text?: string }[];
  attributes: Record<string, unknown>;
};

/** A deterministic step of `n` observations: every 7th kept, the rest rejected for price
 * (even) or rating (odd); prices cycle through 1..100. */
export function observations(n: number, prefix = 'C'): Observation[] {
  return Array.from({ length: n }, (_, i) => {
    const kept = i % 7 === 0;
    const price = (i % 100) + 1;
    return {
      candidate_id: `${prefix}${String(i).padStart(5, '0')}`,
      verdict: kept ? 'kept' : 'rejected',
      score: i % 10 === 9 ? null : Math.round(((i * 37) % 1000)) / 1000,
      reasons: kept
        ? []
        : i % 2 === 0
          ? [{ code: 'price_out_of_range', text: `${price}.00 is outside 20-80` }]
          : [{ code: 'rating_below_threshold', text: 'rating 3.1 < 4.0' }],
      attributes: { price, category: i % 3 === 0 ? 'Laptop Stands' : 'Cell Phone Cases' },
    };
  });
}

export function flowRecord(opts: {
  pipeline: string;
  tags?: Record<string, string>;
  steps?: { name: string; kind: string; observations: Observation[]; candidates_in?: number }[];
  startedAt?: Date;
  status?: string;
}) {
  const started = opts.startedAt ?? new Date();
  const steps = (opts.steps ?? [
    { name: 'retrieve', kind: 'retrieve', observations: [] as Observation[], candidates_in: 10 },
  ]).map((s, seq) => {
    const reasons: Record<string, number> = {};
    for (const o of s.observations) for (const r of o.reasons) reasons[r.code] = (reasons[r.code] ?? 0) + 1;
    const out = s.observations.length
      ? s.observations.filter((o) => o.verdict !== 'rejected').length
      : s.candidates_in ?? 0;
    return {
      seq,
      name: s.name,
      kind: s.kind,
      status: 'succeeded',
      started_at: started.toISOString(),
      ended_at: new Date(started.getTime() + 10).toISOString(),
      input: { step: s.name },
      output: { kept: out },
      reasoning: `${s.name} decided`,
      candidates_in: s.observations.length || s.candidates_in || 0,
      candidates_out: out,
      reasons,
      capture: 'full',
      observations: s.observations,
    };
  });
  return {
    id: randomUUID(),
    version: 1,
    pipeline: opts.pipeline,
    status: opts.status ?? 'succeeded',
    started_at: started.toISOString(),
    ended_at: new Date(started.getTime() + 50).toISOString(),
    input: { title: 'Adjustable aluminium laptop stand' },
    output: { selected: 'C00000' },
    tags: opts.tags ?? {},
    error: null,
    steps,
  };
}

/** Sends a flow and waits until the worker has made it queryable. */
export async function sendFlow(request: APIRequestContext, record: { id: string }) {
  const headers = { authorization: `Bearer ${process.env.FLOWTRAIL_E2E_KEY}` };
  const sent = await request.post('/api/v1/flows', { data: record, headers });
  expect(sent.status(), await sent.text()).toBe(202);
  await expect
    .poll(async () => (await request.get(`/api/v1/flows/${record.id}`, { headers })).status(), {
      timeout: 20_000,
    })
    .toBe(200);
  return record.id;
}

export function uniquePipeline(name: string) {
  return `${name}_${randomUUID().slice(0, 8)}`;
}
