/**
 * The project's convolution backprop kernels, registered in place of the stock ones:
 *
 * - wasm: stock `@tensorflow/tfjs-backend-wasm` has no `Conv2DBackpropFilter` and neither
 *   depthwise backprop kernel, so without these a CNN cannot train on it (the stock gradients,
 *   fused convolutions' included, call these kernels). The patches are gathered, and both
 *   depthwise gradients computed, by plain loops over the wasm heap (wasm's own StridedSlice
 *   runs element by element in JS); the conv filter gradient is then one matMul,
 *   im2col(x)^T . dy, with the transpose written out (a transposed operand is many times slower
 *   on wasm).
 * - webgpu: stock kernels exist, but its filter gradients took most of a CNN step on an H100.
 *   Here the conv filter gradient gathers the patches as rows with one WGSL shader (a pointwise
 *   convolution's are x itself), then sums cols^T . dy over blocks of positions in parallel:
 *   one batched matMul and one Sum; the depthwise one sums over positions directly (two
 *   shaders); webgpu's own depthwise input gradient, one direct shader, stays.
 *
 * Registered as kernels, not gradients, so every path to them (plain and fused convolutions,
 * Layers) finds them. Layout NHWC; any stride and padding tfjs's computeConv2DInfo resolves.
 * Checked against the cpu backend's stock kernels in conv-grad.test.ts (wasm),
 * webgpu-kernels.test.ts (webgpu on a software adapter) and `npm run bench:train -- --check`
 * (webgpu on a GPU).
 */
import * as tf from '@tensorflow/tfjs';
import { columnGeometry, convPlacement, rowLaneSum, sumBlocks, webGpuOf, type Info, type WebGpuBackend } from './wgsl.js';

type Conv2DInfo = tf.backend_util.Conv2DInfo;

/** Backends that get these kernels: wasm lacks them, webgpu's filter gradient is slow. */
export const CONV_KERNEL_BACKENDS = ['wasm', 'webgpu'] as const;

/** Runs other kernels of one backend and frees every intermediate at the end. */
class Composer {
  private readonly temps: Info[] = [];

  constructor(private readonly backend: tf.KernelBackend, private readonly backendName: string) {}

  run(kernelName: string, inputs: Record<string, Info> | Info[], attrs: Record<string, unknown> = {}): Info {
    const k = tf.getKernel(kernelName, this.backendName);
    if (!k) throw new Error(`conv gradient: backend ${this.backendName} has no ${kernelName} kernel`);
    const out = k.kernelFunc({ inputs: inputs as tf.NamedTensorInfoMap, backend: this.backend, attrs: attrs as tf.NamedAttrMap }) as Info;
    this.temps.push(out);
    return out;
  }

  /** Adopts an output made outside `run`, so `finish` frees it too. */
  track(info: Info): Info {
    this.temps.push(info);
    return info;
  }

  reshape(x: Info, shape: number[]): Info {
    return this.run('Reshape', { x }, { shape });
  }

  /** Frees the intermediates but `keep` (reshapes share data by reference count, so this is safe). */
  finish(keep: Info): Info {
    for (const t of this.temps) if (t !== keep) this.backend.disposeData(t.dataId);
    return keep;
  }
}

/**
 * The wasm backend keeps tensors in its own heap, which JS reads and writes synchronously; its
 * StridedSlice, however, runs element by element in JS and took most of a CNN step. So on wasm
 * the patch gathering (and both depthwise gradients, a few million multiply-adds) run as plain
 * loops over the heap, and only the large conv filter-gradient product goes to its matMul.
 */
interface HeapBackend extends tf.KernelBackend {
  makeOutput(shape: number[], dtype: 'float32'): Info;
  typedArrayFromHeap(info: Info): Float32Array;
}

const heapOf = (backend: tf.KernelBackend): HeapBackend | null =>
  typeof (backend as Partial<HeapBackend>).typedArrayFromHeap === 'function' ? backend as HeapBackend : null;

/** Calls `f(n, oh, ow, i, j, y, x)` for every output position and tap whose input is inside the image. */
function forEachTap(c: Conv2DInfo, f: (n: number, oh: number, ow: number, i: number, j: number, y: number, x: number) => void): void {
  const { top, left } = c.padInfo;
  for (let n = 0; n < c.batchSize; n++) {
    for (let oh = 0; oh < c.outHeight; oh++) {
      for (let ow = 0; ow < c.outWidth; ow++) {
        for (let i = 0; i < c.filterHeight; i++) {
          const y = oh * c.strideHeight + i * c.dilationHeight - top;
          if (y < 0 || y >= c.inHeight) continue;
          for (let j = 0; j < c.filterWidth; j++) {
            const x = ow * c.strideWidth + j * c.dilationWidth - left;
            if (x < 0 || x >= c.inWidth) continue;
            f(n, oh, ow, i, j, y, x);
          }
        }
      }
    }
  }
}

/** im2col(x) transposed, [kh*kw*inC, positions], written straight into the heap. */
function heapColsT(heap: HeapBackend, x: Info, c: Conv2DInfo): Info {
  const P = c.batchSize * c.outHeight * c.outWidth, C = c.inChannels, K = c.filterHeight * c.filterWidth * C;
  const out = heap.makeOutput([1, K, P], 'float32');
  const cols = heap.typedArrayFromHeap(out);
  cols.fill(0);
  const xs = heap.typedArrayFromHeap(x);
  forEachTap(c, (n, oh, ow, i, j, y, xx) => {
    const p = (n * c.outHeight + oh) * c.outWidth + ow;
    const src = ((n * c.inHeight + y) * c.inWidth + xx) * C;
    const row = (i * c.filterWidth + j) * C;
    for (let ch = 0; ch < C; ch++) cols[(row + ch) * P + p] = xs[src + ch]!;
  });
  return out;
}

/** Whether the convolution reads each input pixel once, in place: 1 x 1, stride 1, no padding. */
const pointwise = (c: Conv2DInfo) => c.filterHeight === 1 && c.filterWidth === 1 && c.strideHeight === 1 && c.strideWidth === 1
  && c.padInfo.top === 0 && c.padInfo.left === 0 && c.padInfo.bottom === 0 && c.padInfo.right === 0;

/**
 * Splits of the positions a filter gradient sums over: the product cols^T . dy has a tiny
 * output (taps x in-channels by out-channels) and a long sum (every position of the batch), and
 * one matMul gives such an output a workgroup or two that each walk the whole sum. Split into S
 * blocks of Q positions, a batched matMul computes the S partial products in parallel and one
 * Sum adds them. S is a power of two up to 128 that divides the positions, with Q at least 256.
 */
function splitsOf(positions: number): number {
  let s = 1;
  while (s < 128 && positions % (2 * s) === 0 && positions / (2 * s) >= 256) s *= 2;
  return s;
}

/**
 * The conv filter gradient on webgpu: the patches in their natural layout, [positions, taps x
 * in-channels] (for a pointwise convolution, x itself, with no copy), then S partial products
 * cols^T . dy in one batched matMul (transposing its first operand as it reads), summed.
 * Returns [taps x in-channels, out-channels].
 */
function gpuFilterGrad(k: Composer, gpu: WebGpuBackend, x: Info, dy: Info, c: Conv2DInfo): Info {
  const P = c.batchSize * c.outHeight * c.outWidth, K = c.filterHeight * c.filterWidth * c.inChannels;
  const S = splitsOf(P), Q = P / S;
  const cols = pointwise(c) ? x : k.track(gpuPatches(gpu, x, c));
  const parts = k.run('BatchMatMul', { a: k.reshape(cols, [S, Q, K]), b: k.reshape(dy, [S, Q, c.outChannels]) }, { transposeA: true, transposeB: false });
  return S === 1 ? k.reshape(parts, [K, c.outChannels]) : k.run('Sum', { x: parts }, { axis: [0], keepDims: false });
}

/** The patches of x as rows, [positions, taps x in-channels] (zero where a tap falls outside). */
function gpuPatches(gpu: WebGpuBackend, x: Info, c: Conv2DInfo): Info {
  const P = c.batchSize * c.outHeight * c.outWidth, C = c.inChannels, KK = c.filterHeight * c.filterWidth;
  const outputShape = [P, KK * C];
  const size = P * KK * C;
  const program = {
    variableNames: ['x'],
    uniforms: 'strides : vec2<i32>, pads : vec2<i32>, dilations : vec2<i32>, taps : vec2<i32>, outDims : vec2<i32>, inDims : vec2<i32>, chans : i32, row : i32,',
    workgroupSize: [64, 1, 1] as [number, number, number],
    size: true,
    outputShape,
    dispatchLayout: { x: outputShape.map((_, i) => i) },
    dispatch: [Math.ceil(size / 64), 1, 1] as [number, number, number],
    shaderKey: 'aq_patches_rows',
    getUserCode: () => `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let pos = index / uniforms.row;
          let k = index % uniforms.row;
          let tap = k / uniforms.chans;
          let ch = k % uniforms.chans;
          let ow = pos % uniforms.outDims.y;
          let oh = (pos / uniforms.outDims.y) % uniforms.outDims.x;
          let n = pos / (uniforms.outDims.x * uniforms.outDims.y);
          let i = tap / uniforms.taps.y;
          let j = tap % uniforms.taps.y;
          let y = oh * uniforms.strides.x + i * uniforms.dilations.x - uniforms.pads.x;
          let xx = ow * uniforms.strides.y + j * uniforms.dilations.y - uniforms.pads.y;
          var v = 0.0;
          if (y >= 0 && y < uniforms.inDims.x && xx >= 0 && xx < uniforms.inDims.y) {
            v = getX(n, y, xx, ch);
          }
          setOutputAtIndex(index, v);
        }
      }`,
  };
  return gpu.runWebGPUProgram(program, [x], 'float32', [
    ...convPlacement(c),
    { type: 'int32', data: [C] },
    { type: 'int32', data: [KK * C] },
  ]);
}

/**
 * The depthwise filter gradient on webgpu, directly: dF[i, j, c, m] is the sum over positions of
 * x at tap (i, j) times dy, for output channel c*mult + m. One kernel sums blocks of positions,
 * lanes along output channels (reads of x and dy coalesce) and one accumulator a tap per
 * thread, into [blocks, taps, outC]; a second adds the blocks. (Gathering the patches and a
 * batched matMul, as before, was half the GPU time of a pose CNN step: four kernels, a
 * [C, taps, positions] copy of x, and a product with two tiny sides and a huge inner one.)
 */
function gpuDepthwiseFilterGrad(gpu: WebGpuBackend, x: Info, dy: Info, c: Conv2DInfo, mult: number): Info {
  const P = c.batchSize * c.outHeight * c.outWidth, OC = c.inChannels * mult, KK = c.filterHeight * c.filterWidth;
  const g = columnGeometry(P, OC);
  const program = {
    variableNames: ['x', 'dy'],
    uniforms: 'strides : vec2<i32>, pads : vec2<i32>, dilations : vec2<i32>, taps : vec2<i32>, outDims : vec2<i32>, inDims : vec2<i32>, chans : i32, mult : i32, positions : i32, perSplit : i32,',
    workgroupSize: [g.tc, g.r, 1] as [number, number, number],
    outputShape: [g.splits, KK, OC],
    dispatchLayout: { x: [2], y: [0], z: [1] },
    dispatch: [g.tiles, g.splits, 1] as [number, number, number],
    shaderKey: `aq_dw_filter_grad_${KK}_${g.tc}x${g.r}`,
    getUserCode: () => `
      var<workgroup> buf : array<f32, 256>;
      fn main() {
        let OC = uniforms.chans * uniforms.mult;
        let lane = i32(localId.x);
        let rl = i32(localId.y);
        let li = rl * ${g.tc} + lane;
        let oc = i32(workgroupId.x) * ${g.tc} + lane;
        let ch = oc / uniforms.mult;
        let split = i32(workgroupId.y);
        let p0 = split * uniforms.perSplit;
        let p1 = min(p0 + uniforms.perSplit, uniforms.positions);
        var acc : array<f32, ${KK}>;
        for (var t = 0; t < ${KK}; t = t + 1) { acc[t] = 0.0; }
        if (oc < OC) {
          for (var p = p0 + rl; p < p1; p = p + ${g.r}) {
            let ow = p % uniforms.outDims.y;
            let oh = (p / uniforms.outDims.y) % uniforms.outDims.x;
            let n = p / (uniforms.outDims.x * uniforms.outDims.y);
            let d = dy[p * OC + oc];
            for (var i = 0; i < uniforms.taps.x; i = i + 1) {
              let y = oh * uniforms.strides.x + i * uniforms.dilations.x - uniforms.pads.x;
              if (y >= 0 && y < uniforms.inDims.x) {
                for (var j = 0; j < uniforms.taps.y; j = j + 1) {
                  let xx = ow * uniforms.strides.y + j * uniforms.dilations.y - uniforms.pads.y;
                  if (xx >= 0 && xx < uniforms.inDims.y) {
                    let t = i * uniforms.taps.y + j;
                    acc[t] = acc[t] + x[((n * uniforms.inDims.x + y) * uniforms.inDims.y + xx) * uniforms.chans + ch] * d;
                  }
                }
              }
            }
          }
        }
        for (var t = 0; t < ${KK}; t = t + 1) {
          buf[li] = acc[t];
          workgroupBarrier();
          ${rowLaneSum('buf', g.tc, g.r)}
          if (rl == 0 && oc < OC) {
            result[(split * ${KK} + t) * OC + oc] = buf[lane];
          }
          workgroupBarrier();
        }
      }`,
  };
  const part = gpu.runWebGPUProgram(program, [x, dy], 'float32', [
    ...convPlacement(c),
    { type: 'int32', data: [c.inChannels] },
    { type: 'int32', data: [mult] },
    { type: 'int32', data: [P] },
    { type: 'int32', data: [g.rowsPerSplit] },
  ]);
  const out = sumBlocks(gpu, part, 0, [c.filterHeight, c.filterWidth, c.inChannels, mult]);
  gpu.disposeData(part.dataId);
  return out;
}

interface ConvAttrs {
  strides: [number, number] | number;
  pad: 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
  dataFormat?: string;
  dilations?: [number, number] | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape?: number[];
  inputShape?: number[];
}

function convInfo(xShape: number[], filterShape: number[], a: ConvAttrs, depthwise: boolean): Conv2DInfo {
  if (a.dataFormat !== undefined && a.dataFormat !== 'NHWC') throw new RangeError(`conv gradient: expected NHWC data, got ${a.dataFormat}`);
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number], filterShape as [number, number, number, number],
    a.strides, a.dilations ?? 1, a.pad, a.dimRoundingMode, depthwise,
  );
}

function conv2dBackpropFilter(backendName: string): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const { x, dy } = inputs as { x: Info; dy: Info };
    const a = attrs as unknown as ConvAttrs;
    const c = convInfo(x.shape, a.filterShape!, a, false);
    const k = new Composer(backend as tf.KernelBackend, backendName);
    const heap = heapOf(backend as tf.KernelBackend), gpu = webGpuOf(backend as tf.KernelBackend);
    if (!heap && !gpu) throw new Error(`conv gradient: backend ${backendName} is neither wasm nor webgpu`);
    const filterShape = [c.filterHeight, c.filterWidth, c.inChannels, c.outChannels];
    if (gpu) return k.finish(k.reshape(gpuFilterGrad(k, gpu, x, dy, c), filterShape));
    const colsT = k.track(heapColsT(heap!, x, c));
    const g = k.run('BatchMatMul', { a: colsT, b: k.reshape(dy, [1, -1, c.outChannels]) }, { transposeA: false, transposeB: false });
    return k.finish(k.reshape(g, filterShape));
  };
}

function depthwiseBackpropFilter(backendName: string): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const { x, dy } = inputs as { x: Info; dy: Info };
    const a = attrs as unknown as ConvAttrs;
    const c = convInfo(x.shape, a.filterShape!, a, true);
    const mult = a.filterShape![3]!;
    const heap = heapOf(backend as tf.KernelBackend);
    if (heap) {
      const out = heap.makeOutput([c.filterHeight, c.filterWidth, c.inChannels, mult], 'float32');
      const g = heap.typedArrayFromHeap(out);
      g.fill(0);
      const xs = heap.typedArrayFromHeap(x), dys = heap.typedArrayFromHeap(dy);
      const C = c.inChannels;
      forEachTap(c, (n, oh, ow, i, j, y, xx) => {
        const src = ((n * c.inHeight + y) * c.inWidth + xx) * C;
        const d = ((n * c.outHeight + oh) * c.outWidth + ow) * C * mult;
        const w = (i * c.filterWidth + j) * C * mult;
        for (let ch = 0; ch < C; ch++) {
          const v = xs[src + ch]!;
          for (let m = 0; m < mult; m++) g[w + ch * mult + m]! += v * dys[d + ch * mult + m]!;
        }
      });
      return out;
    }
    const gpu = webGpuOf(backend as tf.KernelBackend);
    if (!gpu) throw new Error(`conv gradient: backend ${backendName} is neither wasm nor webgpu`);
    return gpuDepthwiseFilterGrad(gpu, x, dy, c, mult);
  };
}

function depthwiseBackpropInput(backendName: string): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const { dy, filter } = inputs as { dy: Info; filter: Info };
    const a = attrs as unknown as ConvAttrs;
    const c = convInfo(a.inputShape!, filter.shape, a, true);
    const mult = filter.shape[3]!;
    const [n, oh, ow, ch] = [c.batchSize, c.outHeight, c.outWidth, c.inChannels];
    const heap = heapOf(backend as tf.KernelBackend);
    if (heap) {
      const out = heap.makeOutput([n, c.inHeight, c.inWidth, ch], 'float32');
      const dx = heap.typedArrayFromHeap(out);
      dx.fill(0);
      const ws = heap.typedArrayFromHeap(filter), dys = heap.typedArrayFromHeap(dy);
      forEachTap(c, (b, r, q, i, j, y, xx) => {
        const dst = ((b * c.inHeight + y) * c.inWidth + xx) * ch;
        const d = ((b * oh + r) * ow + q) * ch * mult;
        const w = (i * c.filterWidth + j) * ch * mult;
        for (let k2 = 0; k2 < ch; k2++) {
          let acc = 0;
          for (let m = 0; m < mult; m++) acc += dys[d + k2 * mult + m]! * ws[w + k2 * mult + m]!;
          dx[dst + k2]! += acc;
        }
      });
      return out;
    }
    throw new Error(`depthwise input gradient: backend ${backendName} is not wasm`);
  };
}

const registered = new Set<string>();

/**
 * Registers the three kernels for `backendName` (one of {@link CONV_KERNEL_BACKENDS}), in place
 * of any stock ones. Idempotent; call it before training on that backend.
 */
export function registerConvKernels(backendName: (typeof CONV_KERNEL_BACKENDS)[number]): void {
  if (registered.has(backendName)) return;
  registered.add(backendName);
  const kernels: [string, (b: string) => tf.KernelFunc][] = [
    ['Conv2DBackpropFilter', conv2dBackpropFilter],
    ['DepthwiseConv2dNativeBackpropFilter', depthwiseBackpropFilter],
  ];
  // webgpu's own depthwise input gradient is one direct shader: it stays.
  if (backendName !== 'webgpu') kernels.push(['DepthwiseConv2dNativeBackpropInput', depthwiseBackpropInput]);
  for (const [kernelName, make] of kernels) {
    if (tf.getKernel(kernelName, backendName)) tf.unregisterKernel(kernelName, backendName);
    tf.registerKernel({ kernelName, backendName, kernelFunc: make(backendName) });
  }
}
