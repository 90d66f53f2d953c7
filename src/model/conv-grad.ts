/**
 * Convolution backprop kernels composed of kernels every backend has (PadV2, StridedSlice,
 * Concat, Reshape, Transpose, BatchMatMul, Multiply, Sum, Slice, Add):
 *
 * - `Conv2DBackpropFilter`: one matMul, im2col(x)^T . dy, with the transpose made explicit
 *   first (a transposed operand is many times slower on wasm);
 * - `DepthwiseConv2dNativeBackpropFilter`: per channel, the input under each tap times dy
 *   summed over positions, as one matMul batched over channels;
 * - `DepthwiseConv2dNativeBackpropInput`: per tap, dy times the tap's weights spread back onto
 *   the stride grid and shifted to the tap's offset in the padded input, summed pairwise (never
 *   a long AddN, which returns zeros silently on webgpu), the padding cut away.
 *
 * Stock `@tensorflow/tfjs-backend-wasm` has none of the three, so without them a CNN cannot
 * train on it (the stock gradients, fused convolutions' included, call these kernels). Stock
 * webgpu has them, but its filter gradient took most of a CNN step on an H100, so there they
 * replace the stock ones. Registered as kernels, not gradients, so every path to them (plain
 * and fused convolutions, Layers) finds them. Layout NHWC; any stride and padding tfjs's
 * computeConv2DInfo resolves (dilation too, though tfjs's gradients refuse it before this runs). Checked against the cpu backend's stock kernels in
 * conv-grad.test.ts.
 */
import * as tf from '@tensorflow/tfjs';

type Info = tf.TensorInfo;
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

  pad(x: Info, paddings: [number, number][]): Info {
    return paddings.every(([a, b]) => a === 0 && b === 0) ? x : this.run('PadV2', { x }, { paddings, constantValue: 0 });
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

/**
 * On webgpu, the patches are gathered by one compute shader (one thread an element), in the
 * layout the product wants: `kp` is [1, kh*kw*inC, positions] for Conv2D's filter gradient,
 * `ckp` is [inC, kh*kw, positions] for the depthwise one (a product batched over channels).
 */
interface WebGpuBackend extends tf.KernelBackend {
  runWebGPUProgram(program: object, inputs: Info[], dtype: 'float32', uniforms?: { type: 'int32'; data: number[] }[]): Info;
}

const webGpuOf = (backend: tf.KernelBackend): WebGpuBackend | null =>
  typeof (backend as Partial<WebGpuBackend>).runWebGPUProgram === 'function' ? backend as WebGpuBackend : null;

function gpuCols(gpu: WebGpuBackend, x: Info, c: Conv2DInfo, layout: 'kp' | 'ckp'): Info {
  const P = c.batchSize * c.outHeight * c.outWidth, C = c.inChannels, KK = c.filterHeight * c.filterWidth;
  const outputShape = layout === 'kp' ? [1, KK * C, P] : [C, KK, P];
  const size = P * KK * C;
  // Which tap (i, j) and channel an output row stands for, by layout.
  const decode = layout === 'kp'
    ? 'let k = index / p; let tap = k / uniforms.chans; let ch = k % uniforms.chans;'
    : 'let k = index / p; let ch = k / (uniforms.taps.x * uniforms.taps.y); let tap = k % (uniforms.taps.x * uniforms.taps.y);';
  const program = {
    variableNames: ['x'],
    uniforms: 'strides : vec2<i32>, pads : vec2<i32>, dilations : vec2<i32>, taps : vec2<i32>, outDims : vec2<i32>, inDims : vec2<i32>, chans : i32, positions : i32,',
    workgroupSize: [64, 1, 1] as [number, number, number],
    size: true,
    outputShape,
    dispatchLayout: { x: outputShape.map((_, i) => i) },
    dispatch: [Math.ceil(size / 64), 1, 1] as [number, number, number],
    shaderKey: `aq_im2col_${layout}`,
    getUserCode: () => `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let p = uniforms.positions;
          ${decode}
          let pos = index % p;
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
    { type: 'int32', data: [c.strideHeight, c.strideWidth] },
    { type: 'int32', data: [c.padInfo.top, c.padInfo.left] },
    { type: 'int32', data: [c.dilationHeight, c.dilationWidth] },
    { type: 'int32', data: [c.filterHeight, c.filterWidth] },
    { type: 'int32', data: [c.outHeight, c.outWidth] },
    { type: 'int32', data: [c.inHeight, c.inWidth] },
    { type: 'int32', data: [C] },
    { type: 'int32', data: [P] },
  ]);
}

/** The input under each filter tap: kh*kw infos [n, outH, outW, inC], in filter order. */
function taps(k: Composer, x: Info, c: Conv2DInfo): Info[] {
  const { top, bottom, left, right } = c.padInfo;
  const xp = k.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]]);
  const out: Info[] = [];
  for (let i = 0; i < c.filterHeight; i++) {
    for (let j = 0; j < c.filterWidth; j++) {
      const r = i * c.dilationHeight, q = j * c.dilationWidth;
      out.push(k.run('StridedSlice', { x: xp }, {
        begin: [0, r, q, 0],
        end: [c.batchSize, r + (c.outHeight - 1) * c.strideHeight + 1, q + (c.outWidth - 1) * c.strideWidth + 1, c.inChannels],
        strides: [1, c.strideHeight, c.strideWidth, 1],
        beginMask: 0, endMask: 0, ellipsisMask: 0, newAxisMask: 0, shrinkAxisMask: 0,
      }));
    }
  }
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
    a.strides, a.dilations ?? 1, a.pad as 'same', a.dimRoundingMode, depthwise,
  );
}

function conv2dBackpropFilter(backendName: string): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const { x, dy } = inputs as { x: Info; dy: Info };
    const a = attrs as unknown as ConvAttrs;
    const c = convInfo(x.shape, a.filterShape!, a, false);
    const k = new Composer(backend as tf.KernelBackend, backendName);
    const heap = heapOf(backend as tf.KernelBackend), gpu = webGpuOf(backend as tf.KernelBackend);
    let colsT: Info;
    if (heap) {
      colsT = k.track(heapColsT(heap, x, c));
    } else if (gpu) {
      colsT = k.track(gpuCols(gpu, x, c, 'kp'));
    } else {
      const t = taps(k, x, c);
      const cols = k.reshape(t.length === 1 ? t[0]! : k.run('Concat', t, { axis: 3 }), [1, -1, c.filterHeight * c.filterWidth * c.inChannels]);
      colsT = k.run('Transpose', { x: cols }, { perm: [0, 2, 1] });
    }
    const g = k.run('BatchMatMul', { a: colsT, b: k.reshape(dy, [1, -1, c.outChannels]) }, { transposeA: false, transposeB: false });
    return k.finish(k.reshape(g, [c.filterHeight, c.filterWidth, c.inChannels, c.outChannels]));
  };
}

function depthwiseBackpropFilter(backendName: string): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const { x, dy } = inputs as { x: Info; dy: Info };
    const a = attrs as unknown as ConvAttrs;
    const c = convInfo(x.shape, a.filterShape!, a, true);
    const mult = a.filterShape![3]!;
    const taps2 = c.filterHeight * c.filterWidth;
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
    const k = new Composer(backend as tf.KernelBackend, backendName);
    // Per channel, one [taps x positions] . [positions x multiplier] product, batched over channels.
    const gpu = webGpuOf(backend as tf.KernelBackend);
    let colsT: Info;
    if (gpu) {
      colsT = k.track(gpuCols(gpu, x, c, 'ckp'));
    } else {
      const t = taps(k, x, c);
      const cols = k.reshape(t.length === 1 ? t[0]! : k.run('Concat', t, { axis: 3 }), [-1, taps2, c.inChannels]);
      colsT = k.run('Transpose', { x: cols }, { perm: [2, 1, 0] });
    }
    const dyT = k.run('Transpose', { x: k.reshape(dy, [-1, c.inChannels, mult]) }, { perm: [1, 0, 2] });
    const g = k.run('BatchMatMul', { a: colsT, b: dyT }, { transposeA: false, transposeB: false });
    const out = k.run('Transpose', { x: g }, { perm: [1, 0, 2] });
    return k.finish(k.reshape(out, [c.filterHeight, c.filterWidth, c.inChannels, mult]));
  };
}

function depthwiseBackpropInput(backendName: string): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const { dy, filter } = inputs as { dy: Info; filter: Info };
    const a = attrs as unknown as ConvAttrs;
    const c = convInfo(a.inputShape!, filter.shape, a, true);
    const { top, bottom, left, right } = c.padInfo;
    const mult = filter.shape[3]!;
    const H = c.inHeight + top + bottom, W = c.inWidth + left + right;
    const spanH = (c.outHeight - 1) * c.strideHeight + 1, spanW = (c.outWidth - 1) * c.strideWidth + 1;
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
    const k = new Composer(backend as tf.KernelBackend, backendName);
    const dyr = k.reshape(dy, [n, oh, ow, ch, mult]);
    let acc: Info | null = null;
    for (let i = 0; i < c.filterHeight; i++) {
      for (let j = 0; j < c.filterWidth; j++) {
        const w = k.reshape(k.run('Slice', { x: filter }, { begin: [i, j, 0, 0], size: [1, 1, ch, mult] }), [ch, mult]);
        let part = k.run('Sum', { x: k.run('Multiply', { a: dyr, b: w }) }, { axis: [4], keepDims: false });
        if (c.strideHeight > 1 || c.strideWidth > 1) {
          // Zeros between the rows and columns: [n, oh, 1, ow, 1, ch] padded to strides, then cut to the span.
          const spread = k.pad(k.reshape(part, [n, oh, 1, ow, 1, ch]), [[0, 0], [0, 0], [0, c.strideHeight - 1], [0, 0], [0, c.strideWidth - 1], [0, 0]]);
          part = k.run('Slice', { x: k.reshape(spread, [n, oh * c.strideHeight, ow * c.strideWidth, ch]) }, { begin: [0, 0, 0, 0], size: [n, spanH, spanW, ch] });
        }
        const r = i * c.dilationHeight, q = j * c.dilationWidth;
        part = k.pad(part, [[0, 0], [r, H - r - spanH], [q, W - q - spanW], [0, 0]]);
        acc = acc ? k.run('Add', { a: acc, b: part }) : part;
      }
    }
    const dx = k.run('Slice', { x: acc! }, { begin: [0, top, left, 0], size: [n, c.inHeight, c.inWidth, ch] });
    return k.finish(dx);
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
