/**
 * Every family's exported model loads where TF.js loads, with no project code: in headless
 * Chromium (Debian's /usr/bin/chromium, or CHROMIUM, driven by puppeteer-core) with stock
 * tf.min.js, and in a plain Node process with stock @tensorflow/tfjs; a ViT with the
 * `aq-layers.js` written beside it. Each predicts what the project's own model predicts within
 * 1e-5. Without `aq-layers.js` stock TF.js refuses the ViT, naming the layer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import puppeteer, { type Browser } from 'puppeteer-core';
import { buildModel, saveModelFiles, selectBackend, type ModelSpec } from '../src/model/index.js';
import { getTask } from '../src/tasks/index.js';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ROOT = path.resolve(import.meta.dirname, '..');
const TFJS = createRequire(path.join(ROOT, 'package.json')).resolve('@tensorflow/tfjs');
const TF_MIN = path.join(path.dirname(TFJS), 'tf.min.js');

const FAMILIES: { name: string; task: string; spec: ModelSpec }[] = [
  { name: 'mlp', task: 'exercise', spec: { family: 'mlp', hidden: [32, 16] } },
  { name: 'cnn', task: 'pose', spec: { family: 'cnn', widths: [8, 16, 16, 24] } },
  { name: 'vit', task: 'pose', spec: { family: 'vit', patch: 8, dim: 32, depth: 2, heads: 4 } },
];

interface Exported { name: string; inputs: number[]; shape: number[]; expected: number[] }

let dir: string;
let server: http.Server;
let base: string;
let browser: Browser;
const exported: Exported[] = [];

beforeAll(async () => {
  await selectBackend('cpu');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aq-portable-'));
  for (const f of FAMILIES) {
    const task = getTask(f.task);
    const model = buildModel(f.spec, task.inputShape, task.head, 7);
    await saveModelFiles(model, path.join(dir, f.name));
    const v = task.generateValidation('portable', 3);
    const x = task.features(v.x, v.count);
    const shape = [v.count, ...task.inputShape];
    const expected = Array.from((model.predict(tf.tensor(x, shape)) as tf.Tensor).dataSync());
    exported.push({ name: f.name, inputs: Array.from(x), shape, expected });
  }
  fs.copyFileSync(TF_MIN, path.join(dir, 'tf.min.js'));
  fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><script src="/tf.min.js"></script>');
  server = http.createServer((req, res) => {
    const file = path.join(dir, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    if (!file.startsWith(dir) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': file.endsWith('.js') ? 'text/javascript' : file.endsWith('.html') ? 'text/html' : 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Largest difference between two equally long arrays. */
const maxDiff = (a: number[], b: number[]) => (a.length !== b.length ? Infinity : Math.max(...a.map((x, i) => Math.abs(x - b[i]!))));

/** Predicts `e`'s inputs in the page: stock tf.min.js on its cpu backend, plus aq-layers.js when given. */
async function predictInBrowser(e: Exported, withLayers: boolean): Promise<number[]> {
  const page = await browser.newPage();
  try {
    await page.goto(`${base}/index.html`);
    if (withLayers) await page.addScriptTag({ url: `${base}/${e.name}/aq-layers.js` });
    return await page.evaluate(async (name, inputs, shape) => {
      const t = (globalThis as unknown as { tf: typeof tf }).tf;
      await t.setBackend('cpu');
      const model = await t.loadLayersModel(`/${name}/model.json`);
      return Array.from((model.predict(t.tensor(inputs, shape)) as tf.Tensor).dataSync());
    }, e.name, e.inputs, e.shape);
  } finally {
    await page.close();
  }
}

/** Predicts `e`'s inputs in a plain Node process: stock @tensorflow/tfjs, plus aq-layers.js when the model has it. */
function predictInNode(e: Exported): number[] {
  const script = path.join(dir, `${e.name}-node.mjs`);
  fs.writeFileSync(path.join(dir, `${e.name}-in.json`), JSON.stringify(e));
  fs.writeFileSync(script, `
import fs from 'node:fs';
const tf = await import(${JSON.stringify(pathToFileURL(TFJS).href)});
globalThis.tf = tf;
const dir = ${JSON.stringify(path.join(dir, e.name))};
if (fs.existsSync(dir + '/aq-layers.js')) await import(dir + '/aq-layers.js');
const json = JSON.parse(fs.readFileSync(dir + '/model.json', 'utf8'));
const w = fs.readFileSync(dir + '/weights.bin');
const model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: json.weightsManifest[0].weights, weightData: w.buffer.slice(w.byteOffset, w.byteOffset + w.byteLength) }));
const e = JSON.parse(fs.readFileSync(${JSON.stringify(path.join(dir, `${e.name}-in.json`))}, 'utf8'));
process.stdout.write(JSON.stringify(Array.from(model.predict(tf.tensor(e.inputs, e.shape)).dataSync())));
`);
  // No tsx, no project module: the process sees only stock TF.js and the exported files.
  return JSON.parse(execFileSync(process.execPath, [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } })) as number[];
}

describe('exported models outside the project', () => {
  it('only the ViT needs aq-layers.js, and stock TF.js refuses it without, naming the layer', async () => {
    expect(FAMILIES.map((f) => fs.existsSync(path.join(dir, f.name, 'aq-layers.js')))).toEqual([false, false, true]);
    await expect(predictInBrowser(exported[2]!, false)).rejects.toThrow(/Unknown layer: Aq\w+/);
  }, 60_000);

  for (const f of FAMILIES) {
    it(`${f.name}: a browser and a plain Node process predict what the project predicts, within 1e-5`, async () => {
      const e = exported.find((x) => x.name === f.name)!;
      expect(e.expected.length).toBeGreaterThan(0);
      expect(maxDiff(await predictInBrowser(e, f.name === 'vit'), e.expected)).toBeLessThan(1e-5);
      expect(maxDiff(predictInNode(e), e.expected)).toBeLessThan(1e-5);
    }, 60_000);
  }
});
