/**
 * Batch norm and the ReLU after it, trained as one op on webgpu.
 *
 * In tfjs-layers a training step through BatchNormalization + ReLU(6) is about 110 kernels:
 * moments, the normalisation, the moving-average updates, then the gradients of all of those
 * (reductions over the batch axes go through a transpose each) and of relu and clipByValue
 * (five kernels). On webgpu in Node every kernel costs about 0.1 ms of CPU to dispatch whatever
 * its size, so for the pose CNN's seven such pairs this was most of the step. Here the pair is
 * ten small WGSL kernels: forward, per-channel partial sums over row blocks (coalesced: lanes
 * run along channels), their totals, the normalisation with the activation, and the two moving
 * averages; backward, the partial sums of the masked gradient and of its product with x-hat,
 * their totals (dbeta, dgamma, and the coefficients of dx), and dx. The gradient is the full
 * batch-norm gradient (through the batch mean and variance), as tfjs's.
 *
 * Variance comes from sums of (x - shift) and (x - shift)^2 with the channel's first value as
 * the shift, so it does not cancel when the mean is large against the spread.
 *
 * {@link trainingForward} applies a Sequential model layer by layer and uses the fused op for
 * each BatchNormalization (over the last axis, with centre and scale) that is followed by a
 * ReLU layer or stands alone; everything else, and every other backend, goes through tfjs as
 * before. The model itself is unchanged: it saves and loads as plain TF.js layers.
 */
import * as tf from '@tensorflow/tfjs';
import { assignInPlace, gpuInternals } from './gpu-internals.js';

import { columnPairSums, flatProgram as flat, sumBlocks, webGpuKernels, type Info, type WebGpuBackend } from './wgsl.js';

/** What follows the normalisation: nothing, relu, or relu clipped at `max` (ReLU6: 6). */
export type Act = { kind: 'none' } | { kind: 'relu' } | { kind: 'relu-max'; max: number };

const actKey = (a: Act) => a.kind;
/** WGSL: true where the activation passes the gradient of its input z. */
const maskOf = (a: Act) => a.kind === 'none' ? 'true' : a.kind === 'relu' ? 'z > 0.0' : 'z > 0.0 && z <= uniforms.hi';
/** WGSL: the activation of z. */
const actOf = (a: Act) => a.kind === 'none' ? 'z' : a.kind === 'relu' ? 'max(z, 0.0)' : 'min(max(z, 0.0), uniforms.hi)';
const hiOf = (a: Act) => (a.kind === 'relu-max' ? a.max : 0);

/**
 * Per (row block, channel) partial sums of a [rows, chans] view. `stats`: of d = x - shift and
 * d^2 (and the shift), out [splits, 3, chans]. `grad`: of g = dy where the activation passes
 * and g * x-hat, out [splits, 2, chans].
 */
function partialSums(gpu: WebGpuBackend, mode: 'stats' | 'grad', act: Act, inputs: Info[], rows: number, chans: number): Info {
  const loop = mode === 'stats'
    ? (r: number) => `let shift = x[c];
        for (var row = r0 + rl; row < r1; row = row + ${r}) {
          let d = x[row * C + c] - shift;
          a0 = a0 + d;
          a1 = a1 + d * d;
        }`
    : (r: number) => `let mean = stats[c];
        let invstd = stats[2 * C + c];
        let sa = stats[3 * C + c];
        let sb = stats[4 * C + c];
        for (var row = r0 + rl; row < r1; row = row + ${r}) {
          let i = row * C + c;
          let xv = x[i];
          let z = xv * sa + sb;
          var gv = 0.0;
          if (${maskOf(act)}) { gv = dy[i]; }
          a0 = a0 + gv;
          a1 = a1 + gv * (xv - mean) * invstd;
        }`;
  return columnPairSums(gpu, `aq_bn_partial_${mode}_${actKey(act)}`, mode === 'stats' ? ['x'] : ['x', 'dy', 'stats'], inputs, rows, chans, loop,
    'hi : f32,', [{ type: 'float32', data: [hiOf(act)] }], mode === 'stats' ? 1 : 0, mode === 'stats' ? 'result[(split * k + 2) * C + c] = x[c];' : '');
}

/** Per channel: mean, variance, 1/sqrt(var + eps), and the scale and shift a, b of z = x a + b: [5, chans]. */
function finishStats(gpu: WebGpuBackend, part: Info, gamma: Info, beta: Info, rows: number, chans: number, epsilon: number): Info {
  return flat(gpu, 'aq_bn_stats', ['part', 'gamma', 'beta'], [part, gamma, beta], [5, chans], chans,
    'chans : i32, splits : i32, rows : i32, eps : f32,',
    [{ type: 'int32', data: [chans] }, { type: 'int32', data: [part.shape[0]!] }, { type: 'int32', data: [rows] }, { type: 'float32', data: [epsilon] }], `
      fn main(index : i32) {
        let C = uniforms.chans;
        let c = index;
        if (c < C) {
          var s0 = 0.0;
          var s1 = 0.0;
          for (var s = 0; s < uniforms.splits; s = s + 1) {
            s0 = s0 + part[(s * 3) * C + c];
            s1 = s1 + part[(s * 3 + 1) * C + c];
          }
          let n = f32(uniforms.rows);
          let md = s0 / n;
          let mean = part[2 * C + c] + md;
          let variance = max(s1 / n - md * md, 0.0);
          let invstd = inverseSqrt(variance + uniforms.eps);
          let a = gamma[c] * invstd;
          result[c] = mean;
          result[C + c] = variance;
          result[2 * C + c] = invstd;
          result[3 * C + c] = a;
          result[4 * C + c] = beta[c] - mean * a;
        }
      }`);
}

function applyAct(gpu: WebGpuBackend, act: Act, x: Info, stats: Info, chans: number): Info {
  const size = x.shape.reduce((a, b) => a * b, 1);
  return flat(gpu, `aq_bn_apply_${actKey(act)}`, ['x', 'stats'], [x, stats], x.shape, size, 'chans : i32, hi : f32,',
    [{ type: 'int32', data: [chans] }, { type: 'float32', data: [hiOf(act)] }], `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let C = uniforms.chans;
          let c = index % C;
          let z = x[index] * stats[3 * C + c] + stats[4 * C + c];
          setOutputAtIndex(index, ${actOf(act)});
        }
      }`);
}

/** moving - (moving - stats[row]) * (1 - momentum), as tfjs-layers computes it. */
function movingAverage(gpu: WebGpuBackend, moving: Info, stats: Info, row: 0 | 1, momentum: number, chans: number): Info {
  return flat(gpu, 'aq_bn_moving', ['moving', 'stats'], [moving, stats], [chans], chans, 'row : i32, decay : f32,',
    [{ type: 'int32', data: [row] }, { type: 'float32', data: [1 - momentum] }], `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let m = moving[index];
          setOutputAtIndex(index, m - (m - stats[uniforms.row * uniforms.size + index]) * uniforms.decay);
        }
      }`);
}

/**
 * dx = a g + k1 (x - mean) + k2, with g the gradient the activation passes, a = gamma/std,
 * k1 = -a/std * sum(g x-hat)/n and k2 = -a * sum(g)/n. Coefficients per channel: [5, chans] of
 * a, b, mean, k1, k2.
 */
function dxCoefficients(gpu: WebGpuBackend, part: Info, stats: Info, rows: number, chans: number): Info {
  return flat(gpu, 'aq_bn_dx_coef', ['part', 'stats'], [part, stats], [5, chans], chans, 'chans : i32, splits : i32, rows : i32,',
    [{ type: 'int32', data: [chans] }, { type: 'int32', data: [part.shape[0]!] }, { type: 'int32', data: [rows] }], `
      fn main(index : i32) {
        let C = uniforms.chans;
        let c = index;
        if (c < C) {
          var sg = 0.0;
          var sgx = 0.0;
          for (var s = 0; s < uniforms.splits; s = s + 1) {
            sg = sg + part[(s * 2) * C + c];
            sgx = sgx + part[(s * 2 + 1) * C + c];
          }
          let n = f32(uniforms.rows);
          let invstd = stats[2 * C + c];
          let a = stats[3 * C + c];
          result[c] = a;
          result[C + c] = stats[4 * C + c];
          result[2 * C + c] = stats[c];
          result[3 * C + c] = -a * invstd * sgx / n;
          result[4 * C + c] = -a * sg / n;
        }
      }`);
}

function dxOf(gpu: WebGpuBackend, act: Act, x: Info, dy: Info, coef: Info, chans: number): Info {
  const size = x.shape.reduce((a, b) => a * b, 1);
  return flat(gpu, `aq_bn_dx_${actKey(act)}`, ['x', 'dy', 'coef'], [x, dy, coef], x.shape, size, 'chans : i32, hi : f32,',
    [{ type: 'int32', data: [chans] }, { type: 'float32', data: [hiOf(act)] }], `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let C = uniforms.chans;
          let c = index % C;
          let xv = x[index];
          let a = coef[c];
          let z = xv * a + coef[C + c];
          var gv = 0.0;
          if (${maskOf(act)}) { gv = dy[index]; }
          setOutputAtIndex(index, a * gv + coef[3 * C + c] * (xv - coef[2 * C + c]) + coef[4 * C + c]);
        }
      }`);
}

const webGpu = (): WebGpuBackend | null => {
  const b = tf.backend() as Partial<WebGpuBackend>;
  return tf.getBackend() === 'webgpu' && typeof b.runWebGPUProgram === 'function' ? b as WebGpuBackend : null;
};

type Attrs = { act: Act['kind']; hi: number; rows: number; chans: number; mode?: 'stats' | 'grad'; row?: 0 | 1; epsilon?: number; momentum?: number };
const actOfAttrs = (a: Attrs): Act => (a.act === 'relu-max' ? { kind: 'relu-max', max: a.hi } : { kind: a.act });

/** The programs as kernels of the webgpu backend (wgsl.ts). */
const KERNELS = webGpuKernels<Attrs>({
  AqBnPartial: (gpu, i, a) => partialSums(gpu, a.mode!, actOfAttrs(a), a.mode === 'stats' ? [i.x!] : [i.x!, i.dy!, i.stats!], a.rows, a.chans),
  AqBnStats: (gpu, i, a) => finishStats(gpu, i.part!, i.gamma!, i.beta!, a.rows, a.chans, a.epsilon!),
  AqBnApply: (gpu, i, a) => applyAct(gpu, actOfAttrs(a), i.x!, i.stats!, a.chans),
  AqBnMoving: (gpu, i, a) => movingAverage(gpu, i.moving!, i.stats!, a.row!, a.momentum!, a.chans),
  // Totals of one row of the grad partial sums: 0 gives dbeta (sum of g), 1 dgamma (sum of g x-hat).
  AqBnGradTotal: (gpu, i, a) => sumBlocks(gpu, i.part!, a.row! * a.chans, [a.chans]),
  AqBnDxCoef: (gpu, i, a) => dxCoefficients(gpu, i.part!, i.stats!, a.rows, a.chans),
  AqBnDx: (gpu, i, a) => dxOf(gpu, actOfAttrs(a), i.x!, i.dy!, i.coef!, a.chans),
});

/** Registers the kernels on the webgpu backend (idempotent; backend.ts does it on selecting webgpu). */
export const registerBnActKernels = () => KERNELS.register();
const run = KERNELS.run.bind(KERNELS);

/** The weights and settings of a BatchNormalization layer that this op reads and updates. */
export interface BatchNormState {
  gamma: tf.Tensor;
  beta: tf.Tensor;
  movingMean: tf.Tensor;
  movingVariance: tf.Tensor;
  epsilon: number;
  momentum: number;
}

/**
 * Training-mode batch norm over the last axis of `x`, then `act`, on webgpu: returns the output
 * (differentiable in x, gamma and beta) and the new moving mean and variance.
 */
export function bnActTrain(x: tf.Tensor, s: BatchNormState, act: Act): { y: tf.Tensor; movingMean: tf.Tensor; movingVariance: tf.Tensor } {
  if (!webGpu()) throw new Error(`bnActTrain runs on webgpu, not ${tf.getBackend()}`);
  registerBnActKernels();
  const chans = x.shape[x.rank - 1]!;
  const base: Attrs = { act: act.kind, hi: hiOf(act), rows: x.size / chans, chans };
  return tf.tidy(() => {
    // Batch statistics and moving averages are not differentiated: the custom gradient below
    // is the whole gradient, through the batch mean and variance too.
    const stats = run('AqBnStats', { part: run('AqBnPartial', { x }, { ...base, mode: 'stats' }), gamma: s.gamma, beta: s.beta }, { ...base, epsilon: s.epsilon });
    const movingMean = run('AqBnMoving', { moving: s.movingMean, stats }, { ...base, row: 0, momentum: s.momentum });
    const movingVariance = run('AqBnMoving', { moving: s.movingVariance, stats }, { ...base, row: 1, momentum: s.momentum });
    const op = tf.customGrad(((xx: tf.Tensor, _gamma: tf.Tensor, _beta: tf.Tensor, save: tf.GradSaveFunc) => {
      save([xx, stats]);
      return {
        value: run('AqBnApply', { x: xx, stats }, base),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [xs, st] = saved as [tf.Tensor, tf.Tensor];
          const part = run('AqBnPartial', { x: xs, dy, stats: st }, { ...base, mode: 'grad' });
          const coef = run('AqBnDxCoef', { part, stats: st }, base);
          return [run('AqBnDx', { x: xs, dy, coef }, base), run('AqBnGradTotal', { part }, { ...base, row: 1 }), run('AqBnGradTotal', { part }, { ...base, row: 0 })];
        },
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0]);
    return { y: op(x, s.gamma, s.beta), movingMean, movingVariance };
  });
}

// The parts of tfjs-layers' BatchNormalization and ReLU this reads (not in their typings).
interface LayerVar { read(): tf.Tensor; write(t: tf.Tensor): void }
interface BnLayer { axis: number; center: boolean; scale: boolean; epsilon: number; momentum: number; gamma?: LayerVar; beta?: LayerVar; movingMean?: LayerVar; movingVariance?: LayerVar; gammaConstraint?: unknown; betaConstraint?: unknown }

/** The activation a layer applies, if it is one this op fuses (ReLU, or Activation relu or relu6). */
function fusableAct(layer: tf.layers.Layer | undefined): Act | null {
  if (!layer) return null;
  const name = layer.getClassName();
  const cfg = layer.getConfig() as { maxValue?: number | null; activation?: string };
  if (name === 'ReLU') return cfg.maxValue == null ? { kind: 'relu' } : { kind: 'relu-max', max: cfg.maxValue };
  if (name === 'Activation' && cfg.activation === 'relu') return { kind: 'relu' };
  if (name === 'Activation' && cfg.activation === 'relu6') return { kind: 'relu-max', max: 6 };
  return null;
}

function fusableBn(layer: tf.layers.Layer, rank: number): BnLayer | null {
  if (layer.getClassName() !== 'BatchNormalization') return null;
  const bn = layer as unknown as BnLayer;
  const last = bn.axis === -1 || bn.axis === rank - 1;
  if (!last || !bn.center || !bn.scale || !bn.gamma || !bn.beta || !bn.movingMean || !bn.movingVariance) return null;
  if (bn.gammaConstraint || bn.betaConstraint) return null;
  return bn;
}

/**
 * The model's training-mode forward pass: `model.apply(x, {training: true})`, except that on
 * webgpu a Sequential model's batch norms (with the ReLU after each, if any) run as
 * {@link bnActTrain}.
 */
export function trainingForward(model: tf.LayersModel): (x: tf.Tensor) => tf.Tensor {
  const plain = (x: tf.Tensor) => model.apply(x, { training: true }) as tf.Tensor;
  if (!webGpu() || model.getClassName() !== 'Sequential') return plain;
  const layers = model.layers;
  if (!layers.some((l) => l.getClassName() === 'BatchNormalization')) return plain;
  return (input: tf.Tensor) => {
    let x = input;
    for (let i = 0; i < layers.length; i++) {
      const layer = layers[i]!;
      const bn = fusableBn(layer, x.rank);
      if (!bn) {
        x = layer.apply(x, { training: true }) as tf.Tensor;
        continue;
      }
      const act = fusableAct(layers[i + 1]);
      const out = bnActTrain(x, {
        gamma: bn.gamma!.read(), beta: bn.beta!.read(), movingMean: bn.movingMean!.read(), movingVariance: bn.movingVariance!.read(),
        epsilon: bn.epsilon, momentum: bn.momentum,
      }, act ?? { kind: 'none' });
      // In place, so that the moving statistics keep their buffers (a replayed step needs them to).
      const gpu = gpuInternals();
      if (gpu) {
        assignInPlace(gpu, bn.movingMean!.read() as tf.Variable, out.movingMean);
        assignInPlace(gpu, bn.movingVariance!.read() as tf.Variable, out.movingVariance);
      } else {
        bn.movingMean!.write(out.movingMean);
        bn.movingVariance!.write(out.movingVariance);
      }
      x = out.y;
      if (act) i++;
    }
    return x;
  };
}
