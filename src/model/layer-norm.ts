/**
 * Layer norm over the last axis as one op on webgpu (the ViT's TokenNorm, vit-layers.ts).
 *
 * Through tfjs it is moments, the normalisation, the scale and shift, and the gradients of each:
 * about 40 kernels a norm, nine norms in the bench's ViT. Here it is seven WGSL kernels: per row,
 * the mean and 1/std (two passes over the row); the normalisation with gamma and beta; and
 * backward, per-column partial sums over row blocks (dbeta, dgamma, lanes along columns), their
 * totals, per-row sums of g*gamma and g*gamma*x-hat, and dx. The same formula as tfjs's
 * (variance about the mean, eps added inside the square root) and its full gradient.
 */
import { backendSettings } from './settings.js';
import * as tf from '@tensorflow/tfjs';
import { useTokenNormKernel } from './vit-layers.js';
import { columnPairSums, flatProgram, sumBlocks, webGpuKernels, type Info, type WebGpuBackend } from './wgsl.js';

type Attrs = { rows: number; dim: number; epsilon?: number; row?: 0 | 1 };

function rowStats(gpu: WebGpuBackend, x: Info, a: Attrs): Info {
  return flatProgram(gpu, 'aq_ln_row_stats', ['x'], [x], [a.rows, 2], a.rows, 'dim : i32, rows : i32, eps : f32,',
    [{ type: 'int32', data: [a.dim] }, { type: 'int32', data: [a.rows] }, { type: 'float32', data: [a.epsilon!] }], `
      fn main(index : i32) {
        if (index < uniforms.rows) {
          let base = index * uniforms.dim;
          var s = 0.0;
          for (var j = 0; j < uniforms.dim; j = j + 1) { s = s + x[base + j]; }
          let mean = s / f32(uniforms.dim);
          var v = 0.0;
          for (var j = 0; j < uniforms.dim; j = j + 1) {
            let d = x[base + j] - mean;
            v = v + d * d;
          }
          result[index * 2] = mean;
          result[index * 2 + 1] = inverseSqrt(v / f32(uniforms.dim) + uniforms.eps);
        }
      }`);
}

function apply(gpu: WebGpuBackend, x: Info, stats: Info, gamma: Info, beta: Info, a: Attrs): Info {
  return flatProgram(gpu, 'aq_ln_apply', ['x', 'stats', 'gamma', 'beta'], [x, stats, gamma, beta], x.shape, a.rows * a.dim, 'dim : i32,',
    [{ type: 'int32', data: [a.dim] }], `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let r = index / uniforms.dim;
          let j = index % uniforms.dim;
          setOutputAtIndex(index, (x[index] - stats[r * 2]) * stats[r * 2 + 1] * gamma[j] + beta[j]);
        }
      }`);
}

/** Per (row block, column): sums of g and of g * x-hat, [blocks, 2, dim]. */
function columnPartial(gpu: WebGpuBackend, x: Info, dy: Info, stats: Info, a: Attrs): Info {
  return columnPairSums(gpu, 'aq_ln_column_partial', ['x', 'dy', 'stats'], [x, dy, stats], a.rows, a.dim, (r) => `
        for (var row = r0 + rl; row < r1; row = row + ${r}) {
          let i = row * C + c;
          let gv = dy[i];
          a0 = a0 + gv;
          a1 = a1 + gv * (x[i] - stats[row * 2]) * stats[row * 2 + 1];
        }`);
}

/** Per row: the means over the row of g*gamma and of g*gamma*x-hat, [rows, 2]. */
function rowGrad(gpu: WebGpuBackend, x: Info, dy: Info, stats: Info, gamma: Info, a: Attrs): Info {
  return flatProgram(gpu, 'aq_ln_row_grad', ['x', 'dy', 'stats', 'gamma'], [x, dy, stats, gamma], [a.rows, 2], a.rows, 'dim : i32, rows : i32,',
    [{ type: 'int32', data: [a.dim] }, { type: 'int32', data: [a.rows] }], `
      fn main(index : i32) {
        if (index < uniforms.rows) {
          let base = index * uniforms.dim;
          let mean = stats[index * 2];
          let invstd = stats[index * 2 + 1];
          var s1 = 0.0;
          var s2 = 0.0;
          for (var j = 0; j < uniforms.dim; j = j + 1) {
            let gg = dy[base + j] * gamma[j];
            s1 = s1 + gg;
            s2 = s2 + gg * (x[base + j] - mean) * invstd;
          }
          result[index * 2] = s1 / f32(uniforms.dim);
          result[index * 2 + 1] = s2 / f32(uniforms.dim);
        }
      }`);
}

/** dx = 1/std * (g*gamma - mean(g*gamma) - x-hat * mean(g*gamma*x-hat)). */
function dxOf(gpu: WebGpuBackend, x: Info, dy: Info, stats: Info, gamma: Info, rg: Info, a: Attrs): Info {
  return flatProgram(gpu, 'aq_ln_dx', ['x', 'dy', 'stats', 'gamma', 'rg'], [x, dy, stats, gamma, rg], x.shape, a.rows * a.dim, 'dim : i32,',
    [{ type: 'int32', data: [a.dim] }], `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let r = index / uniforms.dim;
          let j = index % uniforms.dim;
          let invstd = stats[r * 2 + 1];
          let xhat = (x[index] - stats[r * 2]) * invstd;
          setOutputAtIndex(index, invstd * (dy[index] * gamma[j] - rg[r * 2] - xhat * rg[r * 2 + 1]));
        }
      }`);
}

/** The programs as kernels of the webgpu backend (wgsl.ts). */
const KERNELS = webGpuKernels<Attrs>({
  AqLnRowStats: (gpu, i, a) => rowStats(gpu, i.x!, a),
  AqLnApply: (gpu, i, a) => apply(gpu, i.x!, i.stats!, i.gamma!, i.beta!, a),
  AqLnColumnPartial: (gpu, i, a) => columnPartial(gpu, i.x!, i.dy!, i.stats!, a),
  // Row 0 of the column partial sums gives dbeta, row 1 dgamma.
  AqLnColumnTotal: (gpu, i, a) => sumBlocks(gpu, i.part!, a.row! * a.dim, [a.dim]),
  AqLnRowGrad: (gpu, i, a) => rowGrad(gpu, i.x!, i.dy!, i.stats!, i.gamma!, a),
  AqLnDx: (gpu, i, a) => dxOf(gpu, i.x!, i.dy!, i.stats!, i.gamma!, i.rg!, a),
});

/**
 * Registers the kernels on the webgpu backend and gives them to TokenNorm (idempotent;
 * backend.ts does it on selecting webgpu).
 */
export const registerLayerNormKernels = () => {
  KERNELS.register();
  useTokenNormKernel((x, gamma, beta, epsilon) => (layerNormFused() ? layerNorm(x, gamma, beta, epsilon) : null));
};
const run = KERNELS.run.bind(KERNELS);

/**
 * True where {@link layerNorm} runs: the webgpu backend (`configureBackends({ fusedLayerNorm: false })` turns it off,
 * for the baseline that tests and bench:train compare it with).
 */
export const layerNormFused = () => tf.getBackend() === 'webgpu' && backendSettings().fusedLayerNorm;

/** (x - mean) / sqrt(var + eps) * gamma + beta over the last axis of `x`, on webgpu; differentiable in all three. */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, epsilon: number): tf.Tensor {
  if (!layerNormFused()) throw new Error(`layerNorm runs on webgpu, not ${tf.getBackend()}`);
  registerLayerNormKernels();
  const dim = x.shape[x.rank - 1]!;
  const a: Attrs = { rows: x.size / dim, dim, epsilon };
  const op = tf.customGrad(((xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    const stats = run('AqLnRowStats', { x: xx }, a);
    save([xx, stats, g]);
    return {
      value: run('AqLnApply', { x: xx, stats, gamma: g, beta: b }, a),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, st, gm] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
        const part = run('AqLnColumnPartial', { x: xs, dy, stats: st }, a);
        const rg = run('AqLnRowGrad', { x: xs, dy, stats: st, gamma: gm }, a);
        return [
          run('AqLnDx', { x: xs, dy, stats: st, gamma: gm, rg }, a),
          run('AqLnColumnTotal', { part }, { ...a, row: 1 }),
          run('AqLnColumnTotal', { part }, { ...a, row: 0 }),
        ];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x, gamma, beta);
}
