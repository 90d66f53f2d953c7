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
 * thread summing at least 16 rows, at most 128 blocks. The blocks' partial sums are then added
 * by a second, small kernel.
 */
export function columnGeometry(rows: number, chans: number): { tc: number; r: number; tiles: number; splits: number; rowsPerSplit: number } {
  const tc = chans <= 16 ? 16 : chans <= 32 ? 32 : 64;
  const r = 256 / tc;
  const want = Math.max(1, Math.min(128, Math.ceil(rows / (r * 16))));
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
 * is the sum over blocks of the `size(outShape)` values from `offset` in each block. One
 * workgroup an output value, its 64 threads striding over the blocks (a thread a value, looping
 * over up to 256 blocks one load after another, took 0.2 ms a call on an H100).
 */
export function sumBlocks(gpu: WebGpuBackend, part: Info, offset: number, outShape: number[]): Info {
  const count = outShape.reduce((a, b) => a * b, 1);
  const stride = part.shape.slice(1).reduce((a, b) => a * b, 1);
  const program = {
    variableNames: ['part'],
    uniforms: 'blocks : i32, stride : i32, offset : i32, count : i32,',
    workgroupSize: [64, 1, 1] as [number, number, number],
    outputShape: outShape,
    dispatchLayout: { x: outShape.map((_, i) => i) },
    dispatch: [count, 1, 1] as [number, number, number],
    shaderKey: 'aq_sum_blocks',
    getUserCode: () => `
      var<workgroup> buf : array<f32, 64>;
      fn main(index : i32) {
        let o = i32(workgroupId.y * numWorkgroups.x + workgroupId.x);
        let lane = i32(localId.x);
        var s = 0.0;
        if (o < uniforms.count) {
          for (var k = lane; k < uniforms.blocks; k = k + 64) {
            s = s + part[k * uniforms.stride + uniforms.offset + o];
          }
        }
        buf[lane] = s;
        workgroupBarrier();
        for (var h = 32; h > 0; h = h / 2) {
          if (lane < h) {
            buf[lane] = buf[lane] + buf[lane + h];
          }
          workgroupBarrier();
        }
        if (lane == 0 && o < uniforms.count) {
          result[o] = buf[0];
        }
      }`,
  };
  return gpu.runWebGPUProgram(program, [part], 'float32', [
    { type: 'int32', data: [part.shape[0]!] }, { type: 'int32', data: [stride] }, { type: 'int32', data: [offset] }, { type: 'int32', data: [count] },
  ]);
}

/** A kernel of WGSL programs: the backend, its named inputs, its attributes. */
export type GpuKernel<A> = (gpu: WebGpuBackend, inputs: Record<string, Info>, attrs: A) => Info;

/**
 * Registers `kernels` on the webgpu backend (once per table), so that they run (and are
 * profiled and counted) like any other: tf.profile and bench:train's per-kernel table list them
 * by name. Returns how to run one on tensors.
 */
export function webGpuKernels<A>(kernels: Record<string, GpuKernel<A>>): { register(): void; run(name: string, inputs: Record<string, tf.Tensor>, attrs: A): tf.Tensor } {
  let registered = false;
  return {
    register() {
      if (registered) return;
      registered = true;
      for (const [kernelName, f] of Object.entries(kernels)) {
        tf.registerKernel({
          kernelName, backendName: 'webgpu',
          kernelFunc: ({ inputs, backend, attrs }) => f(backend as unknown as WebGpuBackend, inputs as Record<string, Info>, attrs as unknown as A),
        });
      }
    },
    run: (name, inputs, attrs) => tf.engine().runKernel<tf.Tensor>(name, inputs, attrs as unknown as tf.NamedAttrMap),
  };
}

/** The uniforms that place a convolution's taps (strides, pads, dilations, filter, output and input sizes). */
export function convPlacement(c: tf.backend_util.Conv2DInfo): Uniform[] {
  return [
    { type: 'int32', data: [c.strideHeight, c.strideWidth] },
    { type: 'int32', data: [c.padInfo.top, c.padInfo.left] },
    { type: 'int32', data: [c.dilationHeight, c.dilationWidth] },
    { type: 'int32', data: [c.filterHeight, c.filterWidth] },
    { type: 'int32', data: [c.outHeight, c.outWidth] },
    { type: 'int32', data: [c.inHeight, c.inWidth] },
  ];
}

/**
 * Two sums per column of a [rows, cols] view, per block of rows ({@link columnGeometry}): out
 * [blocks, 2 + extra, cols]. `loop(r)` is WGSL that, for the thread's column `c` (of `C`), adds
 * to `a0` and `a1` over `for (var row = r0 + rl; row < r1; row = row + r)`; `extra` rows of
 * output, if any, are written by `extraWrite` (WGSL, with `split` and `k`, the rows a block).
 */
export function columnPairSums(
  gpu: WebGpuBackend, key: string, names: string[], inputs: Info[], rows: number, cols: number,
  loop: (r: number) => string, uniforms = '', values: Uniform[] = [], extra = 0, extraWrite = '',
): Info {
  const g = columnGeometry(rows, cols);
  const k = 2 + extra;
  const program = {
    variableNames: names,
    uniforms: `cols : i32, rows : i32, rowsPerSplit : i32, ${uniforms}`,
    workgroupSize: [g.tc, g.r, 1] as [number, number, number],
    outputShape: [g.splits, k, cols],
    dispatchLayout: { x: [2], y: [0], z: [1] },
    dispatch: [g.tiles, g.splits, 1] as [number, number, number],
    shaderKey: `${key}_${g.tc}x${g.r}`,
    getUserCode: () => `
      var<workgroup> s0 : array<f32, 256>;
      var<workgroup> s1 : array<f32, 256>;
      fn main() {
        let C = uniforms.cols;
        let lane = i32(localId.x);
        let rl = i32(localId.y);
        let c = i32(workgroupId.x) * ${g.tc} + lane;
        let split = i32(workgroupId.y);
        let k = ${k};
        let r0 = split * uniforms.rowsPerSplit;
        let r1 = min(r0 + uniforms.rowsPerSplit, uniforms.rows);
        var a0 = 0.0;
        var a1 = 0.0;
        if (c < C) {
          ${loop(g.r)}
        }
        let li = rl * ${g.tc} + lane;
        s0[li] = a0;
        s1[li] = a1;
        workgroupBarrier();
        for (var h = ${g.r / 2}; h > 0; h = h / 2) {
          if (rl < h) {
            s0[li] = s0[li] + s0[li + h * ${g.tc}];
            s1[li] = s1[li] + s1[li + h * ${g.tc}];
          }
          workgroupBarrier();
        }
        if (rl == 0 && c < C) {
          result[(split * k) * C + c] = s0[lane];
          result[(split * k + 1) * C + c] = s1[lane];
          ${extraWrite}
        }
      }`,
  };
  return gpu.runWebGPUProgram(program, inputs, 'float32', [
    { type: 'int32', data: [cols] }, { type: 'int32', data: [rows] }, { type: 'int32', data: [g.rowsPerSplit] }, ...values,
  ]);
}
