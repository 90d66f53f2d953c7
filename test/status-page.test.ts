/**
 * The coordinator's status page in a real browser: headless Chromium (Debian's, at
 * /usr/bin/chromium, or CHROMIUM) driven by puppeteer-core, against a running federation. The
 * page shows the job, its rounds advance while it is watched, and its trainers' scores are
 * GetScore's. A screenshot is saved to `AQ_SCREENSHOT` (default: the test's temp folder), never
 * committed; `npm run screenshot` writes docs/status-page.png with it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';
import { Harness } from './helpers.js';
import { callUnary, makeClient, CoordinatorClient } from '../src/wire/index.js';

let h: Harness;
let browser: Browser | null = null;
afterEach(async () => {
  await browser?.close();
  browser = null;
  await h.close();
});

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

describe('the status page', () => {
  it('shows the job in a real browser, its rounds advance while watched, and the scores table is GetScore\'s', async () => {
    h = new Harness();
    const c = await h.coordinator(['--rounds', '6', '--cohort', '3', '--min-trainers', '3', '--secure-aggregation', 'false', '--hidden', '16',
      '--local-epochs', '1', '--validation-samples', '70', '--metrics-host', '127.0.0.1']);
    const ds = await h.dataset(c.address, 'ds-a');
    browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    const page = await browser.newPage();
    await page.setViewport({ width: 1200, height: 900 });
    await page.goto(`http://${c.metricsAddress}/`);
    await page.waitForSelector('[data-job="job-1"]', { timeout: 30_000 });
    const roundShown = async () => Number(await page.$eval('[data-job="job-1"] .round', (e) => e.textContent));
    const first = await roundShown();
    expect(first).toBe(0);
    // The trainers come while the page is watched, and the rounds advance on it (it polls every 2 s).
    const trainers = [];
    for (const t of ['t0', 't1', 't2']) trainers.push(await h.trainer(c.address, t, ['--delay-per-batch-ms', '60']));
    await page.waitForFunction((r) => Number(document.querySelector('[data-job="job-1"] .round')?.textContent) > r, { timeout: 60_000, polling: 250 }, first);
    expect(await roundShown()).toBeGreaterThan(first);
    expect(await page.$eval('#title', (e) => e.textContent)).toMatch(/^Actiquest coordinator /);
    await c.done;
    // After the last round: the page's trainers table against GetScore, once it has refreshed.
    await page.waitForFunction(() => document.querySelector('[data-job="job-1"] .state')?.textContent === 'DONE', { timeout: 30_000, polling: 250 });
    await new Promise((r) => setTimeout(r, 2500));
    const rows = await page.$$eval('#trainers tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
    expect(rows.map((r) => r[0]).sort()).toEqual(['t0', 't1', 't2']);
    // The last weights set (weights.json, no chain): each trainer's share of them.
    const set = JSON.parse(fs.readFileSync(path.join(h.dir, 'out', 'weights.json'), 'utf8')) as { values: number[]; nodes: { nodeId: string; u16: number }[] };
    const total = set.values.reduce((a, b) => a + b, 0);
    const client = makeClient(CoordinatorClient, c.address);
    try {
      for (const r of rows) {
        expect(r[8]).toBe(`${((set.nodes.find((n) => n.nodeId === r[0])!.u16 / total) * 100).toFixed(1)}%`);
        const s = await callUnary(client, 'GetScore', { nodeId: r[0]! }, { timeoutMs: 5000 });
        expect(r[2]).toBe(s.score.toFixed(3));
        expect(r[3]).toBe(s.quality.toFixed(3));
        expect(r[4]).toBe(s.reliability.toFixed(3));
      }
    } finally {
      client.close();
    }
    // The curve has a point per round.
    expect(await page.$$eval('[data-job="job-1"] svg circle', (cs) => cs.length)).toBe(6);
    const shot = process.env.AQ_SCREENSHOT ?? path.join(h.dir, 'status-page.png');
    fs.mkdirSync(path.dirname(shot), { recursive: true });
    await page.screenshot({ path: shot, fullPage: true });
    expect(fs.statSync(shot).size).toBeGreaterThan(10_000);

    // A trainer's page: its validator, the tasks it did there, its score there.
    await page.goto(`http://${trainers[0]!.metricsAddress}/`);
    await page.waitForFunction(() => document.querySelectorAll('#validators tbody tr td').length > 1, { timeout: 10_000, polling: 250 });
    const [validator] = await page.$$eval('#validators tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
    expect(validator![1]).toBe(c.address);
    expect(Number(validator![3])).toBeGreaterThanOrEqual(1);
    expect(validator![7]).toMatch(/^\d\.\d{3}$/);
    expect(await page.$eval('#title', (e) => e.textContent)).toBe('Actiquest trainer t0');
    // A dataset node's page: the validator it serves and its shards.
    await page.goto(`http://${ds.metricsAddress}/`);
    await page.waitForFunction(() => document.querySelectorAll('#shards tbody tr').length === 6, { timeout: 10_000, polling: 250 });
    expect(await page.$$eval('#validators tbody tr td:nth-child(2)', (tds) => tds.map((td) => td.textContent))).toEqual([c.address]);
  }, 180_000);
});
