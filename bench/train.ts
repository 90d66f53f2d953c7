/**
 * `npm run bench:train`: training throughput (images a second) of the pose task's CNN and a
 * small ViT at several batch sizes, on every backend that loads here (webgpu where a GPU and
 * its Vulkan driver are present, and wasm on this machine's CPU, as the baseline measured in
 * the same run), with the ratio, and a per-kernel profile of one step on the fastest backend.
 *
 * Each figure: the median of `--steps` timed steps after `--warmup` untimed ones; a step is a
 * full forward, backward and Adam update (the trainers' flat Adam; on webgpu, batch 256 is also
 * timed with tf.train.adam, the CNN with tfjs-layers' batch norm and the ViT with tfjs's layer
 * norm in place of the fused ops, as baselines) on rendered 64 x 64 pose images, synchronised by
 * reading the loss back. Options: --backends webgpu,wasm --batches 64,256,1024 --models cnn,vit
 * --steps 5 --warmup 2 --wasm-max-batch 256 (larger wasm batches take minutes and show the same
 * rate) --out FILE (the figures as JSON too) --check (first, the project's conv backprop kernels
 * on each backend against the cpu backend's stock ones, as conv-grad.test.ts does on wasm)
 * --flags NAME=VALUE,... (TF.js environment flags to set once a backend is selected)
 * --torch auto|on|off (the yardstick: the same models, loss, optimizer and batches in PyTorch
 * on the same GPU, eager and torch.compile, by bench/torch_train.py, with the ratio of each
 * figure; auto: when webgpu ran on a GPU and python3 has torch with CUDA) --threads N (wasm
 * is timed again with each batch shared by N threads, as CPU trainers train, and the speed-up
 * over one thread printed; 0: every core, 1: not).
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { autoThreads, configureBackends, selectBackend, buildModel, type ModelSpec, meanLoss, targetsOf, FlatAdam, registerOnesGrads, registerReduceGrads, ReplayedSteps, TARGET_KEYS, topologyJson, trainingForward, TrainThreads } from '../src/model/index.js';
import { getTask } from '../src/tasks/index.js';
import { CONV_CASES, convGrads, maxRelErr } from '../test/fixtures/conv-check.js';

const { values } = parseArgs({
  options: {
    backends: { type: 'string', default: 'webgpu,wasm' },
    batches: { type: 'string', default: '64,256,1024' },
    models: { type: 'string', default: 'cnn,vit' },
    steps: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '2' },
    'wasm-max-batch': { type: 'string', default: '256' },
    out: { type: 'string', default: '' },
    check: { type: 'boolean', default: false },
    flags: { type: 'string', default: '' },
    torch: { type: 'string', default: 'auto' },
    threads: { type: 'string', default: '0' },
  },
});
// As on trainers: AQ_WEBGPU_SOFTWARE=1 runs webgpu on Mesa's llvmpipe (slow; checks the kernels and the replay without a GPU).
if (process.env.AQ_WEBGPU_SOFTWARE === '1') configureBackends({ webGpuSoftware: true });
const task = getTask('pose');
const MODELS: Record<string, ModelSpec> = {
  cnn: task.defaultModel,
  vit: { family: 'vit', patch: 8, dim: 64, depth: 4, heads: 4, mlpRatio: 2 },
};
const batches = values.batches.split(',').map(Number);
const STEPS = Number(values.steps), WARMUP = Number(values.warmup);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

if (process.env.AQ_WASM_DIR) {
  const { setWasmPaths } = await import('@tensorflow/tfjs-backend-wasm');
  setWasmPaths(`${process.env.AQ_WASM_DIR.replace(/\/$/, '')}/`);
}

// Rendered once: enough distinct images for the largest batch.
const maxBatch = Math.max(...batches);
const images = task.generateValidation('bench-train', maxBatch);

interface Row { backend: string; device: string; model: string; params: number; batch: number; imagesPerSecond: number; stepMs: number; loss?: [number, number] }
const rows: Row[] = [];
const stockRows: Row[] = [];
const plainRows: Row[] = [];
const threadRows: Row[] = [];
const onesRows: Row[] = [];
const stockBnRows: Row[] = [];
const stockLnRows: Row[] = [];
const profiles: Record<string, { kernel: string; ms: number; share: number }[]> = {};
const dispatches = new Map<string, number>();

async function timeSteps(spec: ModelSpec, batch: number, profile: boolean, stockAdam = false, stockBn = false, replay = true): Promise<{ stepMs: number; params: number; loss: [number, number]; kernels?: { kernel: string; ms: number }[]; replay?: string }> {
  const model = buildModel(spec, task.inputShape, task.head, 1);
  // The trainers' forward pass (batch norm + ReLU as one op on webgpu), or tfjs-layers' own.
  const forward = stockBn ? (a: tf.Tensor) => model.apply(a, { training: true }) as tf.Tensor : trainingForward(model);
  // The trainers' optimizer (one Adam over the flat parameter vector), or tf.train.adam's
  // per-variable updates as the baseline.
  const optimizer = stockAdam ? tf.train.adam(1e-3) : new FlatAdam(1e-3);
  const x = tf.tensor(images.x.subarray(0, batch * 64 * 64 * 3), [batch, 64, 64, 3]);
  const t = targetsOf(task.head, { labels: images.y, keypoints: images.keypoints }, (b) => b, batch);
  const losses: number[] = [];
  const plainStep = async () => {
    const loss = tf.tidy(() => optimizer.minimize(() => meanLoss(task.head, t, forward(x)), true)!);
    losses.push((await loss.data())[0]!);
    loss.dispose();
  };
  // On webgpu the trainers' step is recorded once and replayed (step-replay.ts), each step
  // writing its batch into the input tensors as a trainer does.
  let stepper: ReplayedSteps | null = null;
  let inputs: ArrayBufferView[] = [];
  if (replay && tf.getBackend() === 'webgpu') {
    const slots = [x, ...TARGET_KEYS.filter((k) => t[k]).map((k) => t[k]!)];
    inputs = await Promise.all(slots.map(async (s) => (await s.data()) as Float32Array));
    stepper = new ReplayedSteps(slots, () => optimizer.minimize(() => meanLoss(task.head, t, forward(x)), true)!);
  }
  // A replayed step is issued before the last one's loss is read back, as trainers do.
  const inFlight: { loss: Promise<number> | null } = { loss: null };
  const step = stepper ? async () => {
    const { loss } = await stepper.submit(inputs);
    if (inFlight.loss) losses.push(await inFlight.loss);
    inFlight.loss = loss;
  } : plainStep;
  // Warm-up, and on webgpu until the step replays (one step, then two recorded).
  for (let i = 0; i < WARMUP || (stepper && !stepper.replaying && !stepper.refused && i < WARMUP + 3); i++) await step();
  const times: number[] = [];
  for (let i = 0; i < STEPS; i++) {
    const t0 = performance.now();
    await step();
    times.push(performance.now() - t0);
  }
  let kernels: { kernel: string; ms: number }[] | undefined;
  if (inFlight.loss) losses.push(await inFlight.loss);
  const lastTimed = losses.at(-1)!;
  const replayNote = stepper ? (stepper.replaying ? `replayed, ${stepper.dispatches} dispatches a step, issued in ${stepper.issueMs.toFixed(2)} ms` : `not replayed: ${stepper.refused ?? 'not recorded yet'}`) : undefined;
  stepper?.dispose();
  if (profile) {
    const info = await tf.profile(plainStep);
    const by = new Map<string, number>();
    for (const k of info.kernels) {
      const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
      by.set(k.name, (by.get(k.name) ?? 0) + ms);
    }
    kernels = [...by].map(([kernel, ms]) => ({ kernel, ms })).sort((a, b) => b.ms - a.ms);
    dispatches.set(`${spec.family}/${batch}`, info.kernels.length);
  }
  const params = model.countParams();
  tf.dispose([x, t.coords!, t.mask!, t.torso!]);
  optimizer.dispose();
  model.dispose();
  // The same batch every step: a falling, finite loss says the steps timed did the work.
  return { stepMs: median(times), params, loss: [losses[0]!, lastTimed], kernels, replay: replayNote };
}

/**
 * The same steps as timeSteps on the wasm backend, each batch shared by the trainers' training
 * threads (src/model/train-threads.ts): the gradient of each slice on its own thread, summed,
 * then the same flat Adam step.
 */
async function timeThreadedSteps(spec: ModelSpec, batch: number, threads: TrainThreads): Promise<{ stepMs: number; loss: [number, number] }> {
  const model = buildModel(spec, task.inputShape, task.head, 1);
  const optimizer = new FlatAdam(1e-3);
  const data = { count: batch, features: images.x.subarray(0, batch * 64 * 64 * 3), labels: images.y.subarray(0, batch), keypoints: images.keypoints!.subarray(0, batch * 17 * 3) };
  const steps = await threads.begin(model, topologyJson(model), data, task.head, optimizer, trainingForward(model));
  const rowsOf = Int32Array.from({ length: batch }, (_, i) => i);
  const losses: number[] = [];
  const times: number[] = [];
  for (let i = 0; i < WARMUP + STEPS; i++) {
    const t0 = performance.now();
    losses.push(await steps.step(rowsOf));
    if (i >= WARMUP) times.push(performance.now() - t0);
  }
  await steps.end();
  optimizer.dispose();
  model.dispose();
  return { stepMs: median(times), loss: [losses[0]!, losses.at(-1)!] };
}

console.log(`actiquest bench:train (node ${process.version}); pose task, 64 x 64 x 3 images, Adam, ${STEPS} timed steps after ${WARMUP}`);
if (values.check) {
  await selectBackend('cpu');
  const want = [];
  for (const c of CONV_CASES) want.push(await convGrads(c));
  for (const name of values.backends.split(',')) {
    try {
      await selectBackend(name);
    } catch {
      continue;
    }
    console.log(`\n== conv gradients on ${name} against the cpu backend's stock kernels (max relative error)`);
    for (const [i, c] of CONV_CASES.entries()) {
      const got = await convGrads(c);
      console.log(`  ${c.name.padEnd(48)} filter ${maxRelErr(got.df, want[i]!.df).toExponential(1)}  input ${maxRelErr(got.dx, want[i]!.dx).toExponential(1)}`);
    }
  }
}
for (const name of values.backends.split(',')) {
  let device: string;
  try {
    device = (await selectBackend(name)).device;
  } catch (err) {
    console.log(`\n== ${name}: not available here (${(err as Error).message})`);
    continue;
  }
  for (const kv of values.flags.split(',').filter(Boolean)) {
    const [k, v] = kv.split('=');
    tf.env().set(k!, v === 'true' ? true : v === 'false' ? false : Number(v));
  }
  console.log(`\n== ${name} on ${device}${values.flags ? ` (flags ${values.flags})` : ''}`);
  console.log('  model  params     batch  images/s   step ms   loss, first step -> last timed');
  for (const m of values.models.split(',')) {
    for (const batch of batches) {
      if (name === 'wasm' && batch > Number(values['wasm-max-batch'])) continue;
      const profile = name !== 'wasm' && batch === 256;
      const r = await timeSteps(MODELS[m]!, batch, profile);
      const ips = (batch * 1000) / r.stepMs;
      rows.push({ backend: name, device, model: m, params: r.params, batch, imagesPerSecond: ips, stepMs: r.stepMs, loss: r.loss });
      console.log(`  ${m.padEnd(5)}  ${r.params.toLocaleString('en-US').padStart(9)}  ${String(batch).padStart(6)}  ${ips.toFixed(0).padStart(8)}  ${r.stepMs.toFixed(1).padStart(8)}   ${r.loss[0].toFixed(4)} -> ${r.loss[1].toFixed(4)}${r.replay ? `   (${r.replay})` : ''}`);
      if (r.kernels) {
        const total = r.kernels.reduce((s, k) => s + k.ms, 0);
        profiles[`${name}/${m}/${batch}`] = r.kernels.map((k) => ({ ...k, share: total > 0 ? k.ms / total : 0 }));
      }
    }
  }
  const threadCount = Number(values.threads) || autoThreads();
  if (name === 'wasm' && threadCount > 1) {
    // The one-thread rows above are the baseline; a bundle (scripts/device-bundle.sh) carries the worker as one file beside it.
    const bundled = fileURLToPath(new URL('./train-worker.mjs', import.meta.url));
    const threads = new TrainThreads(threadCount, 'wasm', { ...(existsSync(bundled) ? { workerFile: bundled } : {}), ...(process.env.AQ_WASM_DIR ? { wasmDir: process.env.AQ_WASM_DIR } : {}) });
    console.log(`\n== wasm on ${threadCount} threads, each batch shared (trainers' --threads; ${device})`);
    console.log('  model  batch  images/s   step ms  speed-up over 1 thread   loss, first step -> last timed');
    for (const m of values.models.split(',')) {
      for (const batch of batches.filter((b) => b <= Number(values['wasm-max-batch']))) {
        const one = rows.find((r) => r.backend === 'wasm' && r.model === m && r.batch === batch)!;
        const r = await timeThreadedSteps(MODELS[m]!, batch, threads);
        const ips = (batch * 1000) / r.stepMs;
        threadRows.push({ backend: `wasm x${threadCount}`, device, model: m, params: one.params, batch, imagesPerSecond: ips, stepMs: r.stepMs, loss: r.loss });
        console.log(`  ${m.padEnd(5)}  ${String(batch).padStart(5)}  ${ips.toFixed(0).padStart(8)}  ${r.stepMs.toFixed(1).padStart(8)}  ${(ips / one.imagesPerSecond).toFixed(2).padStart(21)}x   ${r.loss[0].toFixed(4)} -> ${r.loss[1].toFixed(4)}`);
      }
    }
    await threads.close();
  }
  if (name !== 'wasm' && batches.includes(256)) {
    // Baseline in the same run: the same steps, each kernel issued through TF.js (not replayed).
    for (const m of values.models.split(',')) {
      const replayed = rows.find((r) => r.backend === name && r.model === m && r.batch === 256)!;
      const each = await timeSteps(MODELS[m]!, 256, false, false, false, false);
      const ips = (256 * 1000) / each.stepMs;
      plainRows.push({ backend: name, device, model: m, params: each.params, batch: 256, imagesPerSecond: ips, stepMs: each.stepMs, loss: each.loss });
      console.log(`  ${m} batch 256 with each kernel issued through TF.js (not replayed): ${ips.toFixed(0)} images/s, ${each.stepMs.toFixed(1)} ms a step, loss ${each.loss[0].toFixed(4)} -> ${each.loss[1].toFixed(4)}; replaying is ${(replayed.imagesPerSecond / ips).toFixed(2)}x that`);
    }
    // The baselines below are not replayed either, and are compared with the row above.
    // And with tf.train.adam's per-variable updates.
    for (const m of values.models.split(',')) {
      const flat = plainRows.find((r) => r.backend === name && r.model === m)!;
      const stock = await timeSteps(MODELS[m]!, 256, false, true, false, false);
      const ips = (256 * 1000) / stock.stepMs;
      stockRows.push({ backend: name, device, model: m, params: stock.params, batch: 256, imagesPerSecond: ips, stepMs: stock.stepMs });
      console.log(`  ${m} batch 256 with tf.train.adam instead: ${ips.toFixed(0)} images/s, ${stock.stepMs.toFixed(1)} ms a step; the flat Adam is ${(flat.imagesPerSecond / ips).toFixed(2)}x that`);
    }
    // And tfjs-layers' batch norm and ReLU in place of the fused op (the ViT has no batch norm).
    for (const m of values.models.split(',').filter((k) => MODELS[k]!.family === 'cnn')) {
      const flat = plainRows.find((r) => r.backend === name && r.model === m)!;
      const stock = await timeSteps(MODELS[m]!, 256, false, false, true, false);
      const ips = (256 * 1000) / stock.stepMs;
      stockBnRows.push({ backend: name, device, model: m, params: stock.params, batch: 256, imagesPerSecond: ips, stepMs: stock.stepMs });
      console.log(`  ${m} batch 256 with tfjs-layers' batch norm and ReLU instead: ${ips.toFixed(0)} images/s, ${stock.stepMs.toFixed(1)} ms a step; the fused op is ${(flat.imagesPerSecond / ips).toFixed(2)}x that`);
    }
    // And the ViT with tfjs's composite layer norm in place of the fused one.
    for (const m of values.models.split(',').filter((k) => MODELS[k]!.family === 'vit')) {
      const flat = plainRows.find((r) => r.backend === name && r.model === m)!;
      configureBackends({ fusedLayerNorm: false });
      const stock = await timeSteps(MODELS[m]!, 256, false, false, false, false);
      configureBackends({ fusedLayerNorm: true });
      const ips = (256 * 1000) / stock.stepMs;
      stockLnRows.push({ backend: name, device, model: m, params: stock.params, batch: 256, imagesPerSecond: ips, stepMs: stock.stepMs });
      console.log(`  ${m} batch 256 with tfjs's layer norm instead: ${ips.toFixed(0)} images/s, ${stock.stepMs.toFixed(1)} ms a step; the fused op is ${(flat.imagesPerSecond / ips).toFixed(2)}x that`);
    }
    // And tfjs-core's Sum and Mean gradients (a product with ones built on the CPU) instead of ours.
    registerOnesGrads();
    for (const m of values.models.split(',')) {
      const flat = plainRows.find((r) => r.backend === name && r.model === m)!;
      const ones = await timeSteps(MODELS[m]!, 256, false, false, false, false);
      const ips = (256 * 1000) / ones.stepMs;
      onesRows.push({ backend: name, device, model: m, params: ones.params, batch: 256, imagesPerSecond: ips, stepMs: ones.stepMs });
      console.log(`  ${m} batch 256 with tfjs-core's Sum and Mean gradients instead: ${ips.toFixed(0)} images/s, ${ones.stepMs.toFixed(1)} ms a step; ours are ${(flat.imagesPerSecond / ips).toFixed(2)}x that`);
    }
    registerReduceGrads(true);
  }
}

const base = (m: string, batch: number) => rows.find((r) => r.backend === 'wasm' && r.model === m && r.batch === Math.min(batch, Number(values['wasm-max-batch'])));
const fast = rows.filter((r) => r.backend !== 'wasm');
if (fast.length > 0 && rows.some((r) => r.backend === 'wasm')) {
  console.log('\n== ratio against wasm on this machine\'s CPU (wasm at the same batch, or its largest measured)');
  for (const r of fast) {
    const b = base(r.model, r.batch);
    if (b) console.log(`  ${r.backend} ${r.model} batch ${r.batch}: ${(r.imagesPerSecond / b.imagesPerSecond).toFixed(1)}x (${r.imagesPerSecond.toFixed(0)} against ${b.imagesPerSecond.toFixed(0)} images/s)`);
  }
}
for (const [key, ks] of Object.entries(profiles)) {
  const total = ks.reduce((s, k) => s + k.ms, 0);
  if (total === 0) {
    console.log(`\n== where the time goes, ${key}: the backend gave no kernel times (no timestamp queries)`);
    continue;
  }
  const [, fam, b] = key.split('/');
  const step = rows.find((r) => `${r.backend}/${r.model}/${r.batch}` === key)?.stepMs ?? 0;
  console.log(`\n== where the time goes, ${key}: ${dispatches.get(`${fam === 'cnn' ? 'cnn' : 'vit'}/${b}`)} kernels, ${total.toFixed(1)} ms of GPU kernel time in a ${step.toFixed(1)} ms step (the rest is dispatching them)`);
  for (const k of ks.slice(0, 12)) console.log(`  ${k.kernel.padEnd(40)} ${k.ms.toFixed(2).padStart(8)} ms  ${(k.share * 100).toFixed(1).padStart(5)}%`);
}
// The yardstick: PyTorch on the same GPU, same models, loss, optimizer and batches.
interface TorchRow { model: string; mode: string; batch: number; imagesPerSecond: number; stepMs: number }
let torchRows: TorchRow[] = [];
let torchInfo: { device?: string; torch?: string } = {};
const gpuRows = rows.filter((r) => r.backend === 'webgpu' && !/llvmpipe|swiftshader|software/i.test(r.device));
const script = fileURLToPath(new URL('./torch_train.py', import.meta.url));
const wantTorch = values.torch === 'on' || (values.torch === 'auto' && gpuRows.length > 0
  && spawnSync('python3', ['-c', 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'], { stdio: 'ignore' }).status === 0);
if (wantTorch && existsSync(script)) {
  const run = spawnSync('python3', [script, '--models', values.models, '--batches', values.batches, '--steps', String(Math.max(STEPS, 9)), '--warmup', String(WARMUP), '--compile'], { encoding: 'utf8', maxBuffer: 1 << 24 });
  const lines = run.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as TorchRow & { device?: string; torch?: string });
  torchRows = lines.filter((l) => l.model);
  torchInfo = lines.find((l) => l.device) ?? {};
  if (run.status !== 0) console.log(`\n== PyTorch yardstick failed (exit ${run.status}): ${run.stderr.trim().split('\n').slice(-3).join(' / ')}`);
}
if (torchRows.length > 0) {
  console.log(`\n== against PyTorch ${torchInfo.torch ?? ''} on ${torchInfo.device ?? 'the same GPU'} (bench/torch_train.py: the same model, loss, Adam and batch; images a second, and this project's webgpu as a share of each)`);
  console.log('  model  batch  actiquest webgpu  torch eager  share  torch.compile  share');
  for (const r of gpuRows) {
    const eager = torchRows.find((t) => t.model === r.model && t.batch === r.batch && t.mode === 'eager');
    const compiled = torchRows.find((t) => t.model === r.model && t.batch === r.batch && t.mode === 'compile');
    const share = (t?: TorchRow) => (t ? (r.imagesPerSecond / t.imagesPerSecond).toFixed(3) : '-');
    console.log(`  ${r.model.padEnd(5)}  ${String(r.batch).padStart(5)}  ${r.imagesPerSecond.toFixed(0).padStart(16)}  ${(eager?.imagesPerSecond.toFixed(0) ?? '-').padStart(11)}  ${share(eager).padStart(5)}  ${(compiled?.imagesPerSecond.toFixed(0) ?? '-').padStart(13)}  ${share(compiled).padStart(5)}`);
  }
} else if (values.torch === 'on') {
  console.log(`\n== PyTorch yardstick: not run (${existsSync(script) ? 'python3 with torch and CUDA not found, or it failed' : `${script} missing`})`);
}
if (values.out) writeFileSync(values.out, JSON.stringify({ torch: { ...torchInfo, rows: torchRows }, rows, threads: threadRows, notReplayed: plainRows, stockAdam: stockRows, stockBatchNorm: stockBnRows, stockLayerNorm: stockLnRows, onesGrads: onesRows, profiles }, null, 2));
