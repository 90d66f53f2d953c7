/**
 * What the project's WGSL kernels share: the slice of tfjs-webgpu's backend they call, a
 * one-thread-an-element program, and the workgroup layout of per-channel partial sums.
 *
 * tfjs-webgpu wraps a program's `getUserCode()` with bindings for its inputs (by
 * `variableNames`), the output (`result`, `setOutputAtIndex`), and the uniforms (shapes, `size`,
 * and the program's own); `main(index)` is called per element for flat dispatches, `main()`
 * with `localId`/`workgroupId` otherwise. `shaderKey` names the compiled pipeline: anything
 * the code depends on, beyond input ranks and dtypes, must be in it.
 */
import * as tf from '@tensorflow/tfjs';

export type Info = tf.TensorInfo;
export type Uniform = { type: 'int32' | 'float32'; data: number[] };

export interface WebGpuBackend extends tf.KernelBackend {
  runWebGPUProgram(program: object, inputs: Info[], dtype: 'float32', uniforms?: Uniform[]): Info;
}

export const webGpuOf = (backend: tf.KernelBackend): WebGpuBackend | null =>
  typeof (backend as Partial<WebGpuBackend>).runWebGPUProgram === 'function' ? backend as WebGpuBackend : null;

/** A program of one thread per output element (`fn main(index : i32)`), over `threads` of them. */
export function flatProgram(gpu: WebGpuBackend, key: string, names: string[], inputs: Info[], outputShape: number[], threads: number, uniforms: string, values: Uniform[], code: string): Info {
  const program = {
    variableNames: names,
    uniforms,
    workgroupSize: [64, 1, 1] as [number, number, number],
    size: true,
    outputShape,
    dispatchLayout: { x: outputShape.map((_, i) => i) },
    dispatch: [Math.ceil(threads / 64), 1, 1] as [number, number, number],
    shaderKey: key,
    getUserCode: () => code,
  };
  return gpu.runWebGPUProgram(program, inputs, 'float32', values);
}

/**
 * Workgroups for sums over the rows of a [rows, chans] view, per channel: `tc` lanes along
 * channels (consecutive addresses, so reads coalesce) by `r` lanes along rows (256 threads),
 * `tiles` workgroups across the channels and `splits` blocks of `rowsPerSplit` rows, each
 * thread summing at least 16 rows, at most 256 blocks. The blocks' partial sums are then added
 * by a second, small kernel.
 */
export function columnGeometry(rows: number, chans: number): { tc: number; r: number; tiles: number; splits: number; rowsPerSplit: number } {
  const tc = chans <= 16 ? 16 : chans <= 32 ? 32 : 64;
  const r = 256 / tc;
  const want = Math.max(1, Math.min(256, Math.ceil(rows / (r * 16))));
  const rowsPerSplit = Math.ceil(rows / want);
  return { tc, r, tiles: Math.ceil(chans / tc), splits: Math.ceil(rows / rowsPerSplit), rowsPerSplit };
}

/** WGSL: adds `buf[li]` over the `r` row lanes of a column workgroup into row lane 0 (all threads call it). */
export const rowLaneSum = (buf: string, tc: number, r: number) => `
        for (var h = ${r / 2}; h > 0; h = h / 2) {
          if (rl < h) {
            ${buf}[li] = ${buf}[li] + ${buf}[li + h * ${tc}];
          }
          workgroupBarrier();
        }`;

/**
 * Sums the blocks of per-block partial sums: `part` is [blocks, ...]; the output, of `outShape`,
 * is the sum over blocks of the `size(outShape)` values from `offset` in each block.
 */
export function sumBlocks(gpu: WebGpuBackend, part: Info, offset: number, outShape: number[]): Info {
  const size = outShape.reduce((a, b) => a * b, 1);
  const stride = part.shape.slice(1).reduce((a, b) => a * b, 1);
  return flatProgram(gpu, 'aq_sum_blocks', ['part'], [part], outShape, size, 'blocks : i32, stride : i32, offset : i32,',
    [{ type: 'int32', data: [part.shape[0]!] }, { type: 'int32', data: [stride] }, { type: 'int32', data: [offset] }], `
      fn main(index : i32) {
        if (index < uniforms.size) {
          var s = 0.0;
          for (var k = 0; k < uniforms.blocks; k = k + 1) {
            s = s + part[k * uniforms.stride + uniforms.offset + index];
          }
          setOutputAtIndex(index, s);
        }
      }`);
}
