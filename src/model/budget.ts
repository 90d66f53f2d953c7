/**
 * What a model costs, worked out from its TF.js Layers topology before any weight is allocated:
 * only allowed layer types, every layer's output shape (each layer's own `computeOutputShape`
 * on a layer made from its config, never built), its parameters and its forward FLOPs a
 * sample. A researcher's spec is checked against the coordinator's budgets and the task's input
 * and output shapes with this before the model is built, so a spec asking for a billion
 * parameters is refused without the memory for them ever being taken.
 *
 * FLOPs count a multiply-add as 2 and every other element-wise op (activations, norms, pooling,
 * residual adds) as 1, for one sample's forward pass.
 */
import * as tf from '@tensorflow/tfjs';
import { InvalidFieldError } from '../errors.js';
import { checkCost, EVAL_BATCH, headUnits, precheckSpec, type Head, type ModelBudget, type ModelCost } from './contract.js';

export { activationBytes, checkCost, DEFAULT_BUDGET, EVAL_BATCH, precheckSpec, type ModelBudget, type ModelCost } from './contract.js';
import { onnxUnsupported } from './onnx-export.js';
import { buildModel, pythonicToTs, topologyJson, type ModelSpec } from './spec.js';

type Shape = (number | null)[];
type Config = Record<string, unknown>;

/** A layer's cost: parameters, and multiply-adds and other ops a sample. */
interface Cost {
  params: number;
  macs: number;
  ops: number;
}

const size = (s: Shape) => s.slice(1).reduce<number>((a, b) => a * (b ?? 1), 1);
const last = (s: Shape) => s[s.length - 1] ?? 1;
const pair = (v: unknown): [number, number] => (Array.isArray(v) ? [Number(v[0]), Number(v[1] ?? v[0])] : [Number(v), Number(v)]);
const bias = (c: Config, n: number) => (c.use_bias === false ? 0 : n);

/** Layer types a submitted topology may use, and what each costs. */
const LAYERS: Record<string, (inputs: Shape[], out: Shape, c: Config) => Cost> = {
  InputLayer: () => ({ params: 0, macs: 0, ops: 0 }),
  Dense: ([x], out, c) => ({ params: last(x!) * Number(c.units) + bias(c, Number(c.units)), macs: size(out) * last(x!), ops: size(out) }),
  Conv2D: ([x], out, c) => {
    const [kh, kw] = pair(c.kernel_size);
    return { params: kh * kw * last(x!) * Number(c.filters) + bias(c, Number(c.filters)), macs: size(out) * kh * kw * last(x!), ops: size(out) };
  },
  DepthwiseConv2D: ([x], out, c) => {
    const [kh, kw] = pair(c.kernel_size);
    const m = Number(c.depth_multiplier ?? 1);
    return { params: kh * kw * last(x!) * m + bias(c, last(x!) * m), macs: size(out) * kh * kw, ops: size(out) };
  },
  SeparableConv2D: ([x], out, c) => {
    const [kh, kw] = pair(c.kernel_size);
    const m = Number(c.depth_multiplier ?? 1), inC = last(x!), f = Number(c.filters);
    const pixels = size(out) / f;
    return { params: kh * kw * inC * m + inC * m * f + bias(c, f), macs: pixels * (kh * kw * inC * m + inC * m * f), ops: size(out) };
  },
  BatchNormalization: ([x], out, c) => ({ params: last(x!) * (2 + (c.center === false ? 0 : 1) + (c.scale === false ? 0 : 1)), macs: 0, ops: 2 * size(out) }),
  LayerNormalization: ([x], out, c) => ({ params: last(x!) * ((c.center === false ? 0 : 1) + (c.scale === false ? 0 : 1)), macs: 0, ops: 5 * size(out) }),
  AqTokenNorm: ([x], out) => ({ params: 2 * last(x!), macs: 0, ops: 5 * size(out) }),
  AqPositionEmbedding: ([x], out) => ({ params: size(x!), macs: 0, ops: size(out) }),
  AqSelfAttention: ([x], out) => {
    const tokens = Number(x![1]), dim = last(x!);
    return { params: 4 * dim * dim + 4 * dim, macs: tokens * 4 * dim * dim + 2 * tokens * tokens * dim, ops: 3 * tokens * tokens + size(out) };
  },
  Activation: (_, out) => ({ params: 0, macs: 0, ops: size(out) }),
  ReLU: (_, out) => ({ params: 0, macs: 0, ops: size(out) }),
  LeakyReLU: (_, out) => ({ params: 0, macs: 0, ops: size(out) }),
  Softmax: (_, out) => ({ params: 0, macs: 0, ops: 3 * size(out) }),
  Dropout: () => ({ params: 0, macs: 0, ops: 0 }),
  Flatten: () => ({ params: 0, macs: 0, ops: 0 }),
  Reshape: () => ({ params: 0, macs: 0, ops: 0 }),
  ZeroPadding2D: () => ({ params: 0, macs: 0, ops: 0 }),
  UpSampling2D: (_, out) => ({ params: 0, macs: 0, ops: size(out) }),
  MaxPooling2D: ([x]) => ({ params: 0, macs: 0, ops: size(x!) }),
  AveragePooling2D: ([x]) => ({ params: 0, macs: 0, ops: size(x!) }),
  GlobalAveragePooling1D: ([x]) => ({ params: 0, macs: 0, ops: size(x!) }),
  GlobalAveragePooling2D: ([x]) => ({ params: 0, macs: 0, ops: size(x!) }),
  GlobalMaxPooling2D: ([x]) => ({ params: 0, macs: 0, ops: size(x!) }),
  Add: (xs, out) => ({ params: 0, macs: 0, ops: (xs.length - 1) * size(out) }),
  Multiply: (xs, out) => ({ params: 0, macs: 0, ops: (xs.length - 1) * size(out) }),
  Concatenate: () => ({ params: 0, macs: 0, ops: 0 }),
};

/** Layer class names a submitted topology may use. */
export const ALLOWED_LAYERS: readonly string[] = Object.keys(LAYERS);



interface LayerEntry {
  class_name?: unknown;
  name?: unknown;
  config?: unknown;
  inbound_nodes?: unknown;
}

/** Most layers a topology may have. */
const MAX_LAYERS = 512;

const classMap = () => (tf.serialization.SerializationMap as unknown as {
  getMap(): { classNameMap: Record<string, [tf.serialization.SerializableConstructor<tf.serialization.Serializable>, (cls: unknown, config: Config) => tf.serialization.Serializable]> };
}).getMap().classNameMap;

/** A layer made from its config (no weights) and its output shape for `inputs`. */
function outputShape(where: string, className: string, config: Config, inputs: Shape[]): Shape {
  if (className === 'InputLayer') {
    const s = (config.batch_input_shape ?? config.batchInputShape) as Shape | undefined;
    if (!Array.isArray(s)) throw new InvalidFieldError(`${where}.config.batch_input_shape`, 'the input\'s shape', JSON.stringify(s));
    return s;
  }
  const entry = classMap()[className];
  if (!entry) throw new InvalidFieldError(`${where}.class_name`, 'a TF.js layer type', JSON.stringify(className));
  let layer: tf.layers.Layer;
  try {
    layer = entry[1](entry[0], pythonicToTs(config) as Config) as tf.layers.Layer;
  } catch (err) {
    throw new InvalidFieldError(`${where}.config`, `a valid ${className} config`, (err as Error).message);
  }
  let out: tf.Shape | tf.Shape[];
  try {
    out = layer.computeOutputShape(inputs.length === 1 ? inputs[0]! : inputs);
  } catch (err) {
    throw new InvalidFieldError(where, `a ${className} that fits its input ${inputs.map((s) => JSON.stringify(s)).join(', ')}`, (err as Error).message);
  }
  if (Array.isArray(out[0])) throw new InvalidFieldError(where, 'a layer with one output', `${(out as tf.Shape[]).length} outputs`);
  const shape = out as Shape;
  if (shape.slice(1).some((d) => d === null || !(Number(d) > 0))) {
    throw new InvalidFieldError(where, 'a layer whose output has a fixed, positive shape', JSON.stringify(shape));
  }
  return shape;
}

/** Called for each layer of a topology walked by {@link topologyCost}, with its input shapes (batch axis first). */
type LayerVisitor = (where: string, className: string, config: Config, inputs: Shape[]) => void;

/**
 * Throws {@link InvalidFieldError} naming the first layer of a topology that the ONNX export
 * cannot write (every model is exported to ONNX beside TF.js, so such a spec is refused at submit).
 */
export function checkOnnxExportable(topology: unknown, field = 'model.topology'): void {
  topologyCost(topology, field, (where, className, config, inputs) => {
    const why = onnxUnsupported(className, config, inputs[0]?.length ?? null);
    if (why) throw new InvalidFieldError(where, 'a layer the ONNX export can write (every model is exported to ONNX beside TF.js)', why);
  });
}

/**
 * Walks a TF.js Layers topology (`model.toJSON()`'s `modelTopology`: Sequential, or a
 * functional Model whose layers each run once) and returns its cost, without building it.
 * Throws {@link InvalidFieldError} naming the layer for a disallowed type or a shape that does
 * not fit.
 */
export function topologyCost(topology: unknown, field = 'model.topology', visit?: LayerVisitor): ModelCost {
  if (typeof topology !== 'object' || topology === null) throw new InvalidFieldError(field, 'a TF.js Layers topology object', typeof topology);
  const top = topology as { class_name?: unknown; config?: unknown };
  const cfg = (top.config ?? {}) as { layers?: unknown; input_layers?: unknown; output_layers?: unknown };
  if (!Array.isArray(cfg.layers) || cfg.layers.length === 0) throw new InvalidFieldError(`${field}.config.layers`, 'a non-empty list of layers', JSON.stringify(cfg.layers)?.slice(0, 80) ?? 'nothing');
  if (cfg.layers.length > MAX_LAYERS) throw new InvalidFieldError(`${field}.config.layers`, `at most ${MAX_LAYERS} layers`, String(cfg.layers.length));
  const layers = cfg.layers as LayerEntry[];
  let params = 0, macs = 0, ops = 0, activations = 0;
  let outShape: Shape = [];
  let outActivation = 'linear';
  const check = (i: number, e: LayerEntry): { className: string; config: Config; where: string } => {
    const className = String(e.class_name);
    const where = `${field} layer ${i} (${typeof e.config === 'object' && e.config && 'name' in e.config ? String((e.config as Config).name) : className})`;
    if (!Object.hasOwn(LAYERS, className)) {
      throw new InvalidFieldError(`${where}.class_name`, `one of ${ALLOWED_LAYERS.join(', ')}`, JSON.stringify(e.class_name));
    }
    if (typeof e.config !== 'object' || e.config === null) throw new InvalidFieldError(`${where}.config`, 'an object', typeof e.config);
    return { className, config: e.config as Config, where };
  };
  const add = (className: string, inputs: Shape[], out: Shape, config: Config, where: string) => {
    visit?.(where, className, config, inputs);
    const c = LAYERS[className]!(inputs, out, config);
    if (![c.params, c.macs, c.ops].every(Number.isFinite)) throw new InvalidFieldError(where, 'a layer of finite size', JSON.stringify(out));
    params += c.params;
    macs += c.macs;
    ops += c.ops;
    activations += size(out);
  };
  let inputShape: Shape;
  if (top.class_name === 'Sequential') {
    const first = layers[0]!;
    const firstCfg = (first.config ?? {}) as Config;
    let shape = (firstCfg.batch_input_shape ?? firstCfg.batchInputShape) as Shape | undefined;
    if (!Array.isArray(shape)) throw new InvalidFieldError(`${field} layer 0.config.batch_input_shape`, 'the input\'s shape, [null, ...]', JSON.stringify(shape));
    inputShape = shape;
    layers.forEach((e, i) => {
      const { className, config, where } = check(i, e);
      const out = outputShape(where, className, config, [shape!]);
      add(className, [shape!], out, config, where);
      shape = out;
      if (typeof config.activation === 'string') outActivation = config.activation;
      else if (className !== 'Dropout') outActivation = className === 'Softmax' ? 'softmax' : 'linear';
    });
    outShape = shape;
  } else if (top.class_name === 'Model' || top.class_name === 'Functional') {
    const shapes = new Map<string, Shape>();
    const activation = new Map<string, string>();
    const ins = cfg.input_layers as unknown[][] | undefined;
    const outs = cfg.output_layers as unknown[][] | undefined;
    if (!Array.isArray(ins) || ins.length !== 1) throw new InvalidFieldError(`${field}.config.input_layers`, 'exactly one input', JSON.stringify(ins));
    if (!Array.isArray(outs) || outs.length !== 1) throw new InvalidFieldError(`${field}.config.output_layers`, 'exactly one output', JSON.stringify(outs));
    layers.forEach((e, i) => {
      const { className, config, where } = check(i, e);
      const name = String(e.name);
      if (shapes.has(name)) throw new InvalidFieldError(`${where}.name`, 'a name no other layer has', JSON.stringify(name));
      const nodes = (e.inbound_nodes ?? []) as unknown[][][];
      if (!Array.isArray(nodes) || nodes.length > 1) throw new InvalidFieldError(`${where}.inbound_nodes`, 'a layer applied once', JSON.stringify(nodes).slice(0, 80));
      const inputs = (nodes[0] ?? []).map((n) => {
        const from = String(n?.[0]);
        const s = shapes.get(from);
        if (!s) throw new InvalidFieldError(`${where}.inbound_nodes`, 'inputs from layers listed before it', JSON.stringify(from));
        return s;
      });
      if (className !== 'InputLayer' && inputs.length === 0) throw new InvalidFieldError(`${where}.inbound_nodes`, 'at least one input', 'none');
      const out = outputShape(where, className, config, inputs);
      add(className, inputs, out, config, where);
      shapes.set(name, out);
      activation.set(name, typeof config.activation === 'string' ? config.activation : className === 'Softmax' ? 'softmax' : 'linear');
    });
    const inShape = shapes.get(String(ins[0]![0]));
    const o = shapes.get(String(outs[0]![0]));
    if (!inShape) throw new InvalidFieldError(`${field}.config.input_layers`, 'a listed layer', JSON.stringify(ins[0]));
    if (!o) throw new InvalidFieldError(`${field}.config.output_layers`, 'a listed layer', JSON.stringify(outs[0]));
    inputShape = inShape;
    outShape = o;
    outActivation = activation.get(String(outs[0]![0])) ?? 'linear';
  } else {
    throw new InvalidFieldError(`${field}.class_name`, '"Sequential" or "Model"', JSON.stringify(top.class_name));
  }
  return {
    params, flops: 2 * macs + ops, layers: layers.length, activations,
    inputShape: inputShape.slice(1).map(Number), outputShape: outShape.slice(1).map(Number), outputActivation: outActivation,
  };
}


/**
 * The checks of a spec that need no model built: {@link precheckSpec}'s, and a `layers`
 * topology's whole cost (parameters, FLOPs, activations at `batch`), worked out from its layers'
 * configs with TF.js's layer classes. Returns the validated spec.
 */
export function precheckModel(spec: ModelSpec, inputShape: number[], head: Head, budget: ModelBudget, batch = EVAL_BATCH): ModelSpec {
  const valid = precheckSpec(spec, inputShape, head, budget);
  if (valid.family === 'layers') {
    checkCost(topologyCost(valid.topology), budget, inputShape, headUnits(head), head.kind === 'classes', 'model', Math.max(batch, EVAL_BATCH));
    checkOnnxExportable(valid.topology);
  }
  return valid;
}

/**
 * Builds a spec for a task after checking it: a family spec's parameter count is worked out
 * before it is built, a `layers` topology's whole cost is; then the built model's cost is
 * checked against the budgets and the task's shapes.
 */
export function buildCheckedModel(spec: ModelSpec, inputShape: number[], head: Head, seed: number, budget: ModelBudget, batch = EVAL_BATCH): { model: tf.LayersModel; cost: ModelCost } {
  const valid = precheckModel(spec, inputShape, head, budget, batch);
  const model = buildModel(valid, inputShape, head, seed);
  try {
    const topology = JSON.parse(topologyJson(model)) as unknown;
    const cost = topologyCost(topology);
    checkOnnxExportable(topology);
    cost.params = model.countParams();
    checkCost(cost, budget, inputShape, headUnits(head), head.kind === 'classes', 'model', Math.max(batch, EVAL_BATCH));
    return { model, cost };
  } catch (err) {
    model.dispose();
    throw err;
  }
}
