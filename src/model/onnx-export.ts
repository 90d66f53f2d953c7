/**
 * ONNX export of a TF.js Layers model: every layer type a spec may use (budget.ts) written as
 * ONNX operators of opset {@link ONNX_OPSET}, with the weights as initializers, through the
 * `onnx-proto` message classes. The ONNX model takes the same input as the TF.js one (channels
 * last, `[batch, ...task input]`, named `input`) and gives the same output (`output`);
 * convolutions and pooling run channels-first inside, with one Transpose where a run of them
 * begins and ends. Batch norm is folded into a scale and a shift; self-attention is written out
 * as MatMul, Softmax and Transpose; GELU through Erf (opset 17 has no Gelu).
 *
 * {@link onnxUnsupported} says, from a layer's class, config and input rank, why a layer cannot
 * be exported; the spec check (budget.ts `checkOnnxExportable`) calls it so that a spec is
 * refused at submit time, and the converter calls it too, so the two never disagree.
 */
import * as tf from '@tensorflow/tfjs';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

import { ONNX_INPUT, ONNX_IR_VERSION, ONNX_OPSET, ONNX_OUTPUT } from './contract.js';

export { ONNX_FILE, ONNX_INPUT, ONNX_IR_VERSION, ONNX_OPSET, ONNX_OUTPUT } from './contract.js';


type Config = Record<string, unknown>;

/** Keras activation names (either spelling) and what each becomes. */
const ACTIVATIONS = new Set(['linear', 'relu', 'relu6', 'elu', 'selu', 'sigmoid', 'hardSigmoid', 'softmax', 'logSoftmax', 'softplus', 'softsign', 'tanh', 'swish', 'mish', 'gelu', 'geluNew']);

const camel = (s: string) => s.replace(/_+(\w)/g, (_, c: string) => c.toUpperCase());

const activationOf = (c: Config): string => (typeof c.activation === 'string' ? camel(c.activation) : c.activation === undefined || c.activation === null ? 'linear' : 'an object');

const channelsLast = (c: Config) => c.data_format === undefined || c.data_format === null || c.data_format === 'channels_last' || c.data_format === 'channelsLast';

/** Axis settings that mean "the last axis" (the only normalisation axis the export writes). */
const lastAxis = (axis: unknown, rank: number | null): boolean => {
  const a = Array.isArray(axis) ? (axis.length === 1 ? axis[0] : null) : axis;
  return a === undefined || a === -1 || (rank !== null && a === rank - 1);
};

/**
 * Why a layer cannot be exported to ONNX, or null when it can. `rank` is its input's rank with
 * the batch axis, where known.
 */
export function onnxUnsupported(className: string, config: Config, rank: number | null = null): string | null {
  const act = activationOf(config);
  if ('activation' in config && !ACTIVATIONS.has(act)) return `activation ${JSON.stringify(config.activation)} has no ONNX form here`;
  switch (className) {
    case 'InputLayer': case 'Dense': case 'Dropout': case 'Flatten': case 'Reshape': case 'Add': case 'Multiply': case 'Concatenate':
    case 'AqTokenNorm': case 'AqPositionEmbedding': case 'AqSelfAttention': case 'ReLU': case 'LeakyReLU': case 'Activation': case 'GlobalAveragePooling1D':
      return className === 'Flatten' && !channelsLast(config) ? 'Flatten with data_format channels_first' : null;
    case 'Softmax':
      return lastAxis(config.axis, rank) || typeof config.axis === 'number' ? null : `Softmax over axes ${JSON.stringify(config.axis)}`;
    case 'Conv2D': case 'DepthwiseConv2D': case 'SeparableConv2D': case 'MaxPooling2D': case 'AveragePooling2D': case 'ZeroPadding2D':
    case 'GlobalAveragePooling2D': case 'GlobalMaxPooling2D':
      if (!channelsLast(config)) return `${className} with data_format channels_first (the export is written for channels_last inputs)`;
      if (config.padding !== undefined && typeof config.padding === 'string' && !['same', 'valid'].includes(config.padding)) return `${className} with padding ${JSON.stringify(config.padding)}`;
      return null;
    case 'UpSampling2D':
      if (!channelsLast(config)) return 'UpSampling2D with data_format channels_first';
      return config.interpolation === undefined || config.interpolation === 'nearest' || config.interpolation === 'bilinear' ? null : `UpSampling2D with interpolation ${JSON.stringify(config.interpolation)}`;
    case 'BatchNormalization': case 'LayerNormalization':
      return lastAxis(config.axis, rank) ? null : `${className} over axis ${JSON.stringify(config.axis)} (only the last axis, the channels, is exported)`;
    default:
      return `no ONNX form for layer type ${className}`;
  }
}

/** A value in the graph: its name, its shape as TF.js sees it (channels last, no batch), and how it is laid out. */
interface Value {
  name: string;
  shape: number[];
  /** `nchw`: a 4-D value held channels-first (after a convolution). */
  layout: 'nhwc' | 'nchw';
}

/** Attribute values the writer takes. */
type Attr = number | number[] | string | { float: number } | { floats: number[] };

/** Permutes the axes of a row-major array. */
function permute(data: Float32Array, shape: number[], perm: number[]): Float32Array {
  const out = new Float32Array(data.length);
  const outShape = perm.map((p) => shape[p]!);
  const stride = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const idx = new Array<number>(shape.length).fill(0);
  for (let o = 0; o < out.length; o++) {
    let src = 0;
    for (let k = 0; k < perm.length; k++) src += idx[k]! * stride[perm[k]!]!;
    out[o] = data[src]!;
    for (let k = perm.length - 1; k >= 0; k--) {
      if (++idx[k]! < outShape[k]!) break;
      idx[k] = 0;
    }
  }
  return out;
}

const pair = (v: unknown, dflt: number): [number, number] => (v === undefined || v === null ? [dflt, dflt] : Array.isArray(v) ? [Number(v[0]), Number(v[1] ?? v[0])] : [Number(v), Number(v)]);

/** Explicit [top, left, bottom, right] pads of TF's `same` padding (the extra pixel at the end). */
function samePads(inH: number, inW: number, k: [number, number], s: [number, number], d: [number, number]): number[] {
  const one = (n: number, kk: number, ss: number, dd: number) => {
    const total = Math.max((Math.ceil(n / ss) - 1) * ss + (kk - 1) * dd + 1 - n, 0);
    return [Math.floor(total / 2), total - Math.floor(total / 2)];
  };
  const [t, b] = one(inH, k[0], s[0], d[0]);
  const [l, r] = one(inW, k[1], s[1], d[1]);
  return [t!, l!, b!, r!];
}

/** Builds the ONNX graph node by node. */
class GraphWriter {
  readonly nodes: InstanceType<typeof onnx.NodeProto>[] = [];
  readonly initializers: InstanceType<typeof onnx.TensorProto>[] = [];
  private n = 0;

  fresh(hint: string): string {
    return `${hint}_${this.n++}`;
  }

  node(op: string, inputs: string[], attrs: Record<string, Attr> = {}, hint = op.toLowerCase()): string {
    const out = this.fresh(hint);
    const attribute = Object.entries(attrs).map(([name, v]) => {
      if (typeof v === 'string') return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.STRING, s: new TextEncoder().encode(v) });
      if (typeof v === 'number') return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i: v });
      if (Array.isArray(v)) return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INTS, ints: v });
      if ('float' in v) return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.FLOAT, f: v.float });
      return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.FLOATS, floats: v.floats });
    });
    this.nodes.push(onnx.NodeProto.create({ opType: op, input: inputs, output: [out], name: out, attribute }));
    return out;
  }

  floats(hint: string, data: Float32Array, dims: number[]): string {
    const name = this.fresh(hint);
    const raw = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    this.initializers.push(onnx.TensorProto.create({ name, dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData: raw }));
    return name;
  }

  scalar(v: number): string {
    return this.floats('const', new Float32Array([v]), []);
  }

  ints(hint: string, data: number[]): string {
    const name = this.fresh(hint);
    const raw = new Uint8Array(new BigInt64Array(data.map(BigInt)).buffer);
    this.initializers.push(onnx.TensorProto.create({ name, dims: [data.length], dataType: onnx.TensorProto.DataType.INT64, rawData: raw }));
    return name;
  }
}

/** Layer weights by their own names (`kernel`, `bias`, `gamma`...). */
function weightsOf(layer: tf.layers.Layer): Map<string, { data: Float32Array; shape: number[] }> {
  const out = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const w of layer.weights) {
    const name = (w.originalName || w.name).split('/').at(-1)!.replace(/_\d+$/, '');
    const t = w.read();
    out.set(name, { data: t.dataSync() as Float32Array, shape: t.shape });
  }
  return out;
}

/** Converts TF.js Layers models to ONNX; one per model. */
class Converter {
  private readonly g = new GraphWriter();

  /** The value as channels-first (a 4-D value), one Transpose at most. */
  private nchw(v: Value): Value {
    if (v.shape.length !== 3 || v.layout === 'nchw') return v;
    return { name: this.g.node('Transpose', [v.name], { perm: [0, 3, 1, 2] }, 'to_nchw'), shape: v.shape, layout: 'nchw' };
  }

  /** The value laid out as TF.js lays it out (channels last). */
  private nhwc(v: Value): Value {
    if (v.layout === 'nhwc') return v;
    return { name: this.g.node('Transpose', [v.name], { perm: [0, 2, 3, 1] }, 'to_nhwc'), shape: v.shape, layout: 'nhwc' };
  }

  /** `layout`'s position of TF.js axis `axis` (with batch) of a value. */
  private physicalAxis(v: Value, axis: number): number {
    const rank = v.shape.length + 1;
    const a = axis < 0 ? rank + axis : axis;
    return v.layout === 'nchw' ? [0, 2, 3, 1][a]! : a;
  }

  private activation(v: Value, act: string, axis = -1): Value {
    const g = this.g;
    const same = (name: string): Value => ({ ...v, name });
    switch (act) {
      case 'linear': return v;
      case 'relu': return same(g.node('Relu', [v.name]));
      case 'relu6': return same(g.node('Clip', [v.name, g.scalar(0), g.scalar(6)], {}, 'relu6'));
      case 'elu': return same(g.node('Elu', [v.name], { alpha: { float: 1 } }));
      case 'selu': return same(g.node('Selu', [v.name]));
      case 'sigmoid': return same(g.node('Sigmoid', [v.name]));
      case 'hardSigmoid': return same(g.node('HardSigmoid', [v.name], { alpha: { float: 0.2 }, beta: { float: 0.5 } }));
      case 'softplus': return same(g.node('Softplus', [v.name]));
      case 'softsign': return same(g.node('Softsign', [v.name]));
      case 'tanh': return same(g.node('Tanh', [v.name]));
      case 'swish': return same(g.node('Mul', [v.name, g.node('Sigmoid', [v.name])], {}, 'swish'));
      case 'mish': return same(g.node('Mul', [v.name, g.node('Tanh', [g.node('Softplus', [v.name])])], {}, 'mish'));
      case 'gelu': {
        // x * 0.5 * (1 + erf(x / sqrt 2)), as TF.js computes it.
        const erf = g.node('Erf', [g.node('Div', [v.name, g.scalar(Math.SQRT2)])]);
        return same(g.node('Mul', [v.name, g.node('Mul', [g.scalar(0.5), g.node('Add', [g.scalar(1), erf])])], {}, 'gelu'));
      }
      case 'geluNew': {
        const cube = g.node('Mul', [g.scalar(0.044715), g.node('Pow', [v.name, g.scalar(3)])]);
        const inner = g.node('Tanh', [g.node('Mul', [g.scalar(Math.sqrt(2 / Math.PI)), g.node('Add', [v.name, cube])])]);
        return same(g.node('Mul', [g.scalar(0.5), g.node('Mul', [v.name, g.node('Add', [g.scalar(1), inner])])], {}, 'gelu_new'));
      }
      case 'softmax': case 'logSoftmax': {
        const x = v.shape.length === 3 && axis === -1 ? this.nhwc(v) : v;
        return { ...x, name: g.node(act === 'softmax' ? 'Softmax' : 'LogSoftmax', [x.name], { axis: this.physicalAxis(x, axis) }) };
      }
      default: throw new Error(`activation ${act}`);
    }
  }

  /** Adds a [C] per-channel constant (or multiplies by it) over the channel axis of `v`. */
  private channelwise(op: 'Add' | 'Mul', v: Value, data: Float32Array): Value {
    const dims = v.layout === 'nchw' ? [data.length, 1, 1] : [data.length];
    return { ...v, name: this.g.node(op, [v.name, this.g.floats(op === 'Add' ? 'shift' : 'scale', data, dims)]) };
  }

  private conv(x: Value, kernel: { data: Float32Array; shape: number[] }, c: Config, depthwise: boolean, bias?: Float32Array): Value {
    const [kh, kw, inC, m] = kernel.shape as [number, number, number, number];
    // TF.js: [kh, kw, in, out] (depthwise: [kh, kw, in, multiplier]); ONNX: [out, in / group, kh, kw].
    const w = depthwise
      ? this.g.floats('w', permute(kernel.data, kernel.shape, [2, 3, 0, 1]), [inC * m, 1, kh, kw])
      : this.g.floats('w', permute(kernel.data, kernel.shape, [3, 2, 0, 1]), [m, inC, kh, kw]);
    return this.window('Conv', x, c, { kernel: [kh, kw], group: depthwise ? inC : 1, w, bias, outC: depthwise ? inC * m : m });
  }

  /** A convolution or pooling window over an NCHW value, with TF's padding. */
  private window(op: 'Conv' | 'MaxPool' | 'AveragePool', x0: Value, c: Config, o: { kernel: [number, number]; group?: number; w?: string; bias?: Float32Array; outC: number }): Value {
    const x = this.nchw(x0);
    const [h, wd] = x.shape as [number, number, number];
    const s = pair(c.strides, op === 'Conv' ? 1 : o.kernel[0]);
    const d = op === 'Conv' ? pair(c.dilation_rate, 1) : [1, 1] as [number, number];
    const pads = c.padding === 'same' ? samePads(h, wd, o.kernel, s, d) : [0, 0, 0, 0];
    const attrs: Record<string, Attr> = { kernel_shape: o.kernel, strides: s, pads };
    if (op === 'Conv') Object.assign(attrs, { dilations: d, group: o.group ?? 1 });
    if (op === 'AveragePool') attrs.count_include_pad = 0;
    const inputs = op === 'Conv' ? [x.name, o.w!, ...(o.bias ? [this.g.floats('b', o.bias, [o.bias.length])] : [])] : [x.name];
    const eff = (n: number, k: number, st: number, dd: number) => (c.padding === 'same' ? Math.ceil(n / st) : Math.floor((n - (k - 1) * dd - 1) / st) + 1);
    const shape = [eff(h, o.kernel[0], s[0], d[0]), eff(wd, o.kernel[1], s[1], d[1]), o.outC];
    return { name: this.g.node(op, inputs, attrs), shape, layout: 'nchw' };
  }

  /** The ONNX form of one layer applied to `ins`. */
  private layer(layer: tf.layers.Layer, className: string, c: Config, ins: Value[]): Value {
    const g = this.g;
    const x = ins[0]!;
    const wts = weightsOf(layer);
    const get = (n: string) => {
      const w = wts.get(n);
      if (!w) throw new Error(`${layer.name}: no weight ${n} (has ${[...wts.keys()].join(', ')})`);
      return w;
    };
    const outShape = (layer.outputShape as number[]).slice(1);
    const act = (v: Value) => this.activation(v, activationOf(c));
    switch (className) {
      case 'Dense': {
        const v = this.nhwc(x);
        const k = get('kernel');
        let y = g.node('MatMul', [v.name, g.floats('kernel', k.data, k.shape)]);
        if (wts.has('bias')) y = g.node('Add', [y, g.floats('bias', get('bias').data, [k.shape[1]!])]);
        return act({ name: y, shape: outShape, layout: 'nhwc' });
      }
      case 'Conv2D':
        return act(this.conv(x, get('kernel'), c, false, wts.get('bias')?.data));
      case 'DepthwiseConv2D':
        return act(this.conv(x, get('depthwise_kernel'), c, true, wts.get('bias')?.data));
      case 'SeparableConv2D': {
        const dw = this.conv(x, get('depthwise_kernel'), c, true);
        const pw = get('pointwise_kernel');
        return act(this.conv(dw, pw, { padding: 'valid' }, false, wts.get('bias')?.data));
      }
      case 'MaxPooling2D': case 'AveragePooling2D':
        return this.window(className === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool', x, c, { kernel: pair(c.pool_size, 2), outC: x.shape[2]! });
      case 'GlobalAveragePooling2D': case 'GlobalMaxPooling2D': {
        const axes = x.layout === 'nchw' ? [2, 3] : [1, 2];
        return { name: g.node(className === 'GlobalMaxPooling2D' ? 'ReduceMax' : 'ReduceMean', [x.name], { axes, keepdims: 0 }), shape: outShape, layout: 'nhwc' };
      }
      case 'GlobalAveragePooling1D':
        return { name: g.node('ReduceMean', [x.name], { axes: [1], keepdims: 0 }), shape: outShape, layout: 'nhwc' };
      case 'ZeroPadding2D': {
        const v = this.nchw(x);
        const p = c.padding;
        const [[t, b], [l, r]] = Array.isArray(p) && Array.isArray(p[0]) ? (p as [[number, number], [number, number]])
          : Array.isArray(p) ? [[Number(p[0]), Number(p[0])], [Number(p[1]), Number(p[1])]] : [[Number(p ?? 1), Number(p ?? 1)], [Number(p ?? 1), Number(p ?? 1)]];
        return { name: g.node('Pad', [v.name, g.ints('pads', [0, 0, t, l, 0, 0, b, r])], { mode: 'constant' }), shape: outShape, layout: 'nchw' };
      }
      case 'UpSampling2D': {
        const v = this.nchw(x);
        const [sh, sw] = pair(c.size, 2);
        const scales = g.floats('scales', new Float32Array([1, 1, sh, sw]), [4]);
        const attrs: Record<string, Attr> = c.interpolation === 'bilinear'
          ? { mode: 'linear', coordinate_transformation_mode: 'asymmetric' }
          : { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' };
        return { name: g.node('Resize', [v.name, '', scales], attrs), shape: outShape, layout: 'nchw' };
      }
      case 'BatchNormalization': {
        const mean = get('moving_mean').data, variance = get('moving_variance').data;
        const gamma = wts.get('gamma')?.data, beta = wts.get('beta')?.data;
        const eps = Number(c.epsilon ?? 1e-3);
        const scale = new Float32Array(mean.length), shift = new Float32Array(mean.length);
        for (let i = 0; i < mean.length; i++) {
          scale[i] = (gamma?.[i] ?? 1) / Math.sqrt(variance[i]! + eps);
          shift[i] = (beta?.[i] ?? 0) - mean[i]! * scale[i]!;
        }
        return this.channelwise('Add', this.channelwise('Mul', x, scale), shift);
      }
      case 'LayerNormalization': case 'AqTokenNorm': {
        const v = this.nhwc(x);
        const dim = v.shape.at(-1)!;
        const gamma = wts.get('gamma')?.data ?? new Float32Array(dim).fill(1), beta = wts.get('beta')?.data ?? new Float32Array(dim);
        const eps = className === 'AqTokenNorm' ? 1e-5 : Number(c.epsilon ?? 1e-3);
        return { name: g.node('LayerNormalization', [v.name, g.floats('gamma', gamma, [dim]), g.floats('beta', beta, [dim])], { axis: -1, epsilon: { float: eps } }), shape: outShape, layout: 'nhwc' };
      }
      case 'AqPositionEmbedding': {
        const t = get('table');
        return { name: g.node('Add', [x.name, g.floats('position', t.data, t.shape)]), shape: outShape, layout: 'nhwc' };
      }
      case 'AqSelfAttention': return this.attention(x, Number(c.heads), get);
      case 'Activation': return this.activation(x, activationOf(c));
      case 'ReLU': {
        if (c.max_value === undefined || c.max_value === null) return { ...x, name: g.node('Relu', [x.name]) };
        return { ...x, name: g.node('Clip', [x.name, g.scalar(0), g.scalar(Number(c.max_value))], {}, 'relu') };
      }
      case 'LeakyReLU': return { ...x, name: g.node('LeakyRelu', [x.name], { alpha: { float: Number(c.alpha ?? 0.3) } }) };
      case 'Softmax': return this.activation(x, 'softmax', typeof c.axis === 'number' ? c.axis : -1);
      case 'Dropout': return x;
      case 'Flatten': {
        const v = this.nhwc(x);
        return { name: g.node('Flatten', [v.name], { axis: 1 }), shape: outShape, layout: 'nhwc' };
      }
      case 'Reshape': {
        const v = this.nhwc(x);
        const target = (c.target_shape as number[]).map(Number);
        return { name: g.node('Reshape', [v.name, g.ints('shape', [0, ...target])]), shape: outShape, layout: 'nhwc' };
      }
      case 'Add': case 'Multiply': {
        const all = ins.map((v) => (v.layout === x.layout ? v : x.layout === 'nchw' ? this.nchw(v) : this.nhwc(v)));
        const op = className === 'Add' ? 'Add' : 'Mul';
        let name = all[0]!.name;
        for (const v of all.slice(1)) name = g.node(op, [name, v.name]);
        return { name, shape: outShape, layout: x.layout };
      }
      case 'Concatenate': {
        const all = ins.map((v) => (v.layout === x.layout ? v : x.layout === 'nchw' ? this.nchw(v) : this.nhwc(v)));
        const axis = this.physicalAxis(all[0]!, Number(c.axis ?? -1));
        return { name: g.node('Concat', all.map((v) => v.name), { axis }), shape: outShape, layout: all[0]!.layout };
      }
      default: throw new Error(`${className}: no ONNX form`);
    }
  }

  /** Multi-head self-attention as vit-layers.ts computes it. */
  private attention(x0: Value, heads: number, get: (n: string) => { data: Float32Array; shape: number[] }): Value {
    const g = this.g;
    const x = this.nhwc(x0);
    const [, dim] = x.shape as [number, number];
    const d = dim / heads;
    const proj = (v: string, n: string) => g.node('Add', [g.node('MatMul', [v, g.floats(`w${n}`, get(`w${n}`).data, [dim, dim])]), g.floats(`b${n}`, get(`b${n}`).data, [dim])]);
    const split = (v: string) => g.node('Reshape', [v, g.ints('shape', [0, 0, heads, d])]);
    const q = g.node('Transpose', [split(proj(x.name, 'q'))], { perm: [0, 2, 1, 3] });
    const kT = g.node('Transpose', [split(proj(x.name, 'k'))], { perm: [0, 2, 3, 1] });
    const v = g.node('Transpose', [split(proj(x.name, 'v'))], { perm: [0, 2, 1, 3] });
    const att = g.node('Softmax', [g.node('Mul', [g.node('MatMul', [q, kT]), g.scalar(1 / Math.sqrt(d))])], { axis: -1 });
    const o = g.node('Reshape', [g.node('Transpose', [g.node('MatMul', [att, v])], { perm: [0, 2, 1, 3] }), g.ints('shape', [0, 0, dim])]);
    return { name: proj(o, 'o'), shape: x.shape, layout: 'nhwc' };
  }

  /** The whole model as an ONNX ModelProto's bytes. */
  convert(model: tf.LayersModel, description: string): Uint8Array {
    const g = this.g;
    const top = model.toJSON(undefined, false) as unknown as { class_name: string; config: { layers: { class_name: string; name?: string; config: Config; inbound_nodes?: unknown[][][] }[] } };
    const layers = top.config.layers;
    if (model.inputs.length !== 1 || model.outputs.length !== 1) throw new Error('ONNX export: a model of one input and one output');
    const inShape = model.inputs[0]!.shape.slice(1) as number[];
    const input: Value = { name: ONNX_INPUT, shape: inShape, layout: 'nhwc' };
    const byName = new Map<string, Value>();
    let last = input;
    const sequential = top.class_name === 'Sequential';
    const modelLayers = model.layers.filter((l) => l.getClassName() !== 'InputLayer');
    let seq = 0;
    for (const e of layers) {
      if (e.class_name === 'InputLayer') {
        byName.set(String(e.name ?? e.config.name), input);
        continue;
      }
      const why = onnxUnsupported(e.class_name, e.config, last.shape.length + 1);
      if (why) throw new Error(`ONNX export: layer ${String(e.config.name)}: ${why}`);
      const layer = sequential ? modelLayers[seq++]! : model.getLayer(String(e.name));
      const ins = sequential ? [last] : (e.inbound_nodes?.[0] ?? []).map((n) => {
        const v = byName.get(String(n[0]));
        if (!v) throw new Error(`ONNX export: layer ${String(e.name)}: input ${String(n[0])} not written yet`);
        return v;
      });
      last = this.layer(layer, e.class_name, e.config, ins);
      byName.set(String(e.name ?? e.config.name), last);
    }
    const out = sequential ? last : byName.get(model.outputLayers[0]!.name)!;
    const final = this.nhwc(out);
    g.nodes.push(onnx.NodeProto.create({ opType: 'Identity', input: [final.name], output: [ONNX_OUTPUT], name: 'output' }));
    const tensorType = (shape: number[]) => ({ tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimParam: 'batch' }, ...shape.map((n) => ({ dimValue: n }))] } } });
    const proto = onnx.ModelProto.create({
      irVersion: ONNX_IR_VERSION,
      producerName: 'actiquest',
      producerVersion: '1',
      docString: description,
      opsetImport: [{ domain: '', version: ONNX_OPSET }],
      graph: {
        name: model.name,
        node: g.nodes,
        initializer: g.initializers,
        input: [{ name: ONNX_INPUT, type: tensorType(inShape) }],
        output: [{ name: ONNX_OUTPUT, type: tensorType(final.shape) }],
      },
    });
    return onnx.ModelProto.encode(proto).finish();
  }
}

/** The model as ONNX bytes (opset {@link ONNX_OPSET}, input `input`, output `output`). */
export function toOnnx(model: tf.LayersModel, description = ''): Uint8Array {
  return new Converter().convert(model, description);
}
