/**
 * Declarative model specs: a built-in family with hyper-parameters, turned into a TF.js Layers
 * model whose last layer fits the task's head. No submitted code is ever run; a spec is data.
 *
 * - `mlp`: dense ReLU layers over a flat input (the `exercise` task's keypoint sequences).
 * - `cnn`: MobileNet-style, for edge devices: a 3x3 stride-2 stem, then per width a
 *   depthwise-separable block (3x3 depthwise, stride 2, then 1x1 pointwise), each conv followed
 *   by batch norm and ReLU6; the last feature map is flattened (keeps where things are, for
 *   keypoints) or average-pooled.
 * - `vit`: a small vision transformer: patches embedded by a strided conv, a learnt position
 *   embedding, pre-norm blocks of multi-head self-attention and a GELU MLP, mean-pooled tokens.
 */
import * as tf from '@tensorflow/tfjs';
import { InvalidFieldError } from '../errors.js';
import { headUnits, type Head } from './head.js';
import { PositionEmbedding, SelfAttention, TokenNorm } from './vit-layers.js';

/** A multi-layer perceptron over a flat input. */
export interface MlpSpec {
  family: 'mlp';
  /** Units of each hidden layer (ReLU). */
  hidden: number[];
  /** Dropout after each hidden layer, 0 to < 1. */
  dropout?: number;
}

/** A MobileNet-style CNN over images. */
export interface CnnSpec {
  family: 'cnn';
  /** Filters of the stem, then of each depthwise-separable block (each halves the resolution). */
  widths: number[];
  /** How the last feature map reaches the head. Default `flatten`. */
  pool?: 'flatten' | 'avg';
  dropout?: number;
}

/** A small ViT over images. */
export interface VitSpec {
  family: 'vit';
  /** Patch side in pixels (the image side must be a multiple). */
  patch: number;
  dim: number;
  depth: number;
  heads: number;
  /** MLP width as a multiple of dim. Default 2. */
  mlpRatio?: number;
  dropout?: number;
}

/**
 * A TF.js Layers topology (`model.toJSON()`'s `modelTopology`, Sequential or functional), of
 * the layer types in `budget.ts` only. Its initializers' seeds are its own.
 */
export interface LayersSpec {
  family: 'layers';
  topology: Record<string, unknown>;
}

/** Any model spec the project can build. */
export type ModelSpec = MlpSpec | CnnSpec | VitSpec | LayersSpec;

/** Largest parameter count a spec may produce (models must fit edge devices). */
export const MAX_PARAMS = 20_000_000;

const isInt = (v: unknown, lo: number, hi: number): v is number => Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi;

/** Checks a spec's fields and returns it typed, or throws naming the field. */
export function validateModelSpec(spec: unknown): ModelSpec {
  if (typeof spec !== 'object' || spec === null) throw new InvalidFieldError('model', 'an object', typeof spec);
  const s = spec as Record<string, unknown>;
  if (s.dropout !== undefined && !((s.dropout as number) >= 0 && (s.dropout as number) < 1)) {
    throw new InvalidFieldError('model.dropout', 'a number in [0, 1)', JSON.stringify(s.dropout));
  }
  switch (s.family) {
    case 'mlp':
      if (!Array.isArray(s.hidden) || s.hidden.length === 0 || s.hidden.some((u) => !isInt(u, 1, 4096))) {
        throw new InvalidFieldError('model.hidden', 'a non-empty list of integers 1 to 4096', JSON.stringify(s.hidden));
      }
      return s as unknown as MlpSpec;
    case 'cnn':
      if (!Array.isArray(s.widths) || s.widths.length < 1 || s.widths.length > 8 || s.widths.some((u) => !isInt(u, 1, 1024))) {
        throw new InvalidFieldError('model.widths', 'a list of 1 to 8 integers 1 to 1024', JSON.stringify(s.widths));
      }
      if (s.pool !== undefined && s.pool !== 'flatten' && s.pool !== 'avg') throw new InvalidFieldError('model.pool', '"flatten" or "avg"', JSON.stringify(s.pool));
      return s as unknown as CnnSpec;
    case 'vit':
      for (const [k, lo, hi] of [['patch', 2, 32], ['dim', 8, 1024], ['depth', 1, 24], ['heads', 1, 32]] as const) {
        if (!isInt(s[k], lo, hi)) throw new InvalidFieldError(`model.${k}`, `an integer ${lo} to ${hi}`, JSON.stringify(s[k]));
      }
      if ((s.dim as number) % (s.heads as number) !== 0) throw new InvalidFieldError('model.dim', `a multiple of heads (${String(s.heads)})`, JSON.stringify(s.dim));
      if (s.mlpRatio !== undefined && !((s.mlpRatio as number) >= 1 && (s.mlpRatio as number) <= 8)) {
        throw new InvalidFieldError('model.mlpRatio', 'a number 1 to 8', JSON.stringify(s.mlpRatio));
      }
      return s as unknown as VitSpec;
    case 'layers':
      if (typeof s.topology !== 'object' || s.topology === null || Array.isArray(s.topology)) {
        throw new InvalidFieldError('model.topology', 'a TF.js Layers topology object (model.toJSON().modelTopology)', JSON.stringify(s.topology)?.slice(0, 80) ?? 'nothing');
      }
      return s as unknown as LayersSpec;
    default:
      throw new InvalidFieldError('model.family', '"mlp", "cnn", "vit" or "layers"', JSON.stringify(s.family));
  }
}

/** The head's last layer: softmax over classes, or sigmoid x, y in image units. */
function headLayer(head: Head, seed: number): tf.layers.Layer {
  return tf.layers.dense({
    units: headUnits(head),
    activation: head.kind === 'classes' ? 'softmax' : 'sigmoid',
    kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1000 }),
    name: 'head',
  });
}

function buildMlp(spec: MlpSpec, inputShape: number[], head: Head, seed: number): tf.LayersModel {
  const layers: tf.layers.Layer[] = [];
  spec.hidden.forEach((units, i) => {
    layers.push(tf.layers.dense({ units, activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed: seed + i }), ...(i === 0 ? { inputShape } : {}) }));
    if (spec.dropout) layers.push(tf.layers.dropout({ rate: spec.dropout }));
  });
  layers.push(headLayer(head, seed));
  return tf.sequential({ layers });
}

function imageShape(inputShape: number[], family: string): [number, number, number] {
  if (inputShape.length !== 3) throw new InvalidFieldError('model.family', `a family for flat inputs (the task's input is ${inputShape.join(' x ')})`, JSON.stringify(family));
  return inputShape as [number, number, number];
}

function buildCnn(spec: CnnSpec, inputShape: number[], head: Head, seed: number): tf.LayersModel {
  const [h, w] = imageShape(inputShape, 'cnn');
  if (h / 2 ** spec.widths.length < 1 || w / 2 ** spec.widths.length < 1) {
    throw new InvalidFieldError('model.widths', `at most ${Math.floor(Math.log2(Math.min(h, w)))} entries for a ${h} x ${w} input`, JSON.stringify(spec.widths));
  }
  let s = seed;
  const init = () => tf.initializers.heNormal({ seed: s++ });
  const bnRelu6 = (layers: tf.layers.Layer[]) => layers.push(tf.layers.batchNormalization({ momentum: 0.9 }), tf.layers.reLU({ maxValue: 6 }));
  const layers: tf.layers.Layer[] = [tf.layers.conv2d({ inputShape, filters: spec.widths[0]!, kernelSize: 3, strides: 2, padding: 'same', useBias: false, kernelInitializer: init() })];
  bnRelu6(layers);
  for (const width of spec.widths.slice(1)) {
    layers.push(tf.layers.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: 'same', useBias: false, depthwiseInitializer: init() }));
    bnRelu6(layers);
    layers.push(tf.layers.conv2d({ filters: width, kernelSize: 1, padding: 'same', useBias: false, kernelInitializer: init() }));
    bnRelu6(layers);
  }
  layers.push((spec.pool ?? 'flatten') === 'flatten' ? tf.layers.flatten() : tf.layers.globalAveragePooling2d({}));
  if (spec.dropout) layers.push(tf.layers.dropout({ rate: spec.dropout }));
  layers.push(headLayer(head, seed));
  return tf.sequential({ layers });
}

function buildVit(spec: VitSpec, inputShape: number[], head: Head, seed: number): tf.LayersModel {
  const [h, w] = imageShape(inputShape, 'vit');
  if (h % spec.patch !== 0 || w % spec.patch !== 0) {
    throw new InvalidFieldError('model.patch', `a divisor of the input's ${h} x ${w}`, JSON.stringify(spec.patch));
  }
  const tokens = (h / spec.patch) * (w / spec.patch);
  let s = seed;
  const input = tf.input({ shape: inputShape });
  let x = tf.layers.conv2d({ filters: spec.dim, kernelSize: spec.patch, strides: spec.patch, kernelInitializer: tf.initializers.glorotUniform({ seed: s++ }) }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.reshape({ targetShape: [tokens, spec.dim] }).apply(x) as tf.SymbolicTensor;
  x = new PositionEmbedding({ seed: s++ }).apply(x) as tf.SymbolicTensor;
  for (let i = 0; i < spec.depth; i++) {
    const a = new SelfAttention({ heads: spec.heads, seed: (s += 4) }).apply(new TokenNorm().apply(x)) as tf.SymbolicTensor;
    x = tf.layers.add().apply([x, a]) as tf.SymbolicTensor;
    let m = tf.layers.dense({ units: Math.round(spec.dim * (spec.mlpRatio ?? 2)), activation: 'gelu', kernelInitializer: tf.initializers.glorotUniform({ seed: s++ }) })
      .apply(new TokenNorm().apply(x)) as tf.SymbolicTensor;
    m = tf.layers.dense({ units: spec.dim, kernelInitializer: tf.initializers.glorotUniform({ seed: s++ }) }).apply(m) as tf.SymbolicTensor;
    if (spec.dropout) m = tf.layers.dropout({ rate: spec.dropout }).apply(m) as tf.SymbolicTensor;
    x = tf.layers.add().apply([x, m]) as tf.SymbolicTensor;
  }
  x = new TokenNorm().apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling1d().apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: headLayer(head, seed).apply(x) as tf.SymbolicTensor });
}

/**
 * Parameters a family spec will have, worked out without building it (so an oversized spec is
 * refused before its memory is taken); `layers` specs are costed by `budget.ts`.
 */
export function familyParams(spec: MlpSpec | CnnSpec | VitSpec, inputShape: number[], head: Head): number {
  const out = headUnits(head);
  if (spec.family === 'mlp') {
    let prev = inputShape.reduce((a, b) => a * b, 1), p = 0;
    for (const h of spec.hidden) {
      p += prev * h + h;
      prev = h;
    }
    return p + prev * out + out;
  }
  const [h, w, c] = imageShape(inputShape, spec.family);
  if (spec.family === 'cnn') {
    const w0 = spec.widths[0]!;
    let p = 9 * c * w0 + 4 * w0, prev = w0, sh = Math.ceil(h / 2), sw = Math.ceil(w / 2);
    for (const width of spec.widths.slice(1)) {
      p += 9 * prev + 4 * prev + prev * width + 4 * width;
      prev = width;
      sh = Math.ceil(sh / 2);
      sw = Math.ceil(sw / 2);
    }
    const features = (spec.pool ?? 'flatten') === 'flatten' ? sh * sw * prev : prev;
    return p + features * out + out;
  }
  const d = spec.dim, m = Math.round(d * (spec.mlpRatio ?? 2));
  const tokens = Math.floor(h / spec.patch) * Math.floor(w / spec.patch);
  const block = 2 * d + (4 * d * d + 4 * d) + 2 * d + (d * m + m) + (m * d + d);
  return spec.patch * spec.patch * c * d + d + tokens * d + spec.depth * block + 2 * d + d * out + out;
}

const camel = (id: string) => (id.length > 1 && id.includes('_') ? id.replace(/_+(\w|$)/g, (_, c: string) => c.toUpperCase()) : id);

/**
 * A Keras-style (snake_case) config in the camelCase form TF.js constructors take: what
 * `tf.models.modelFromJSON` does first, kept synchronous here. Layer names and the layer names
 * in a functional model's wiring stay as they are.
 */
export function pythonicToTs(v: unknown, key = ''): unknown {
  if (v === null || typeof v === 'number' || typeof v === 'boolean') return v;
  if (typeof v === 'string') return camel(v);
  if (Array.isArray(v)) {
    return v.map((item, i) => (['inboundNodes', 'inputLayers', 'outputLayers'].includes(key) && i === 0 && typeof item === 'string' ? item : pythonicToTs(item, key)));
  }
  if (typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (k === 'name' && typeof x === 'string') out[k] = x;
    else out[camel(k)] = pythonicToTs(x, camel(k));
  }
  return out;
}

/** Builds a `layers` spec's topology (its layer types and shapes already checked). */
function buildLayers(spec: LayersSpec): tf.LayersModel {
  const map = (tf.serialization.SerializationMap as unknown as {
    getMap(): { classNameMap: Record<string, [unknown, (cls: unknown, config: unknown) => unknown]> };
  }).getMap().classNameMap;
  const entry = map[String(spec.topology.class_name)];
  if (!entry || !['Sequential', 'Model', 'Functional'].includes(String(spec.topology.class_name))) {
    throw new InvalidFieldError('model.topology.class_name', '"Sequential" or "Model"', JSON.stringify(spec.topology.class_name));
  }
  try {
    return entry[1](entry[0], pythonicToTs(spec.topology.config)) as tf.LayersModel;
  } catch (err) {
    throw new InvalidFieldError('model.topology', 'a topology TF.js can build', (err as Error).message);
  }
}

/** Builds the spec for inputs of `inputShape` and the task's `head`, initialised from `seed`. */
export function buildModel(spec: ModelSpec, inputShape: number[], head: Head, seed = 1): tf.LayersModel {
  const valid = validateModelSpec(spec);
  if (valid.family !== 'layers') {
    const estimate = familyParams(valid, inputShape, head);
    if (estimate > MAX_PARAMS) throw new InvalidFieldError('model', `at most ${MAX_PARAMS} parameters`, String(estimate));
  }
  const model = valid.family === 'mlp' ? buildMlp(valid, inputShape, head, seed)
    : valid.family === 'cnn' ? buildCnn(valid, inputShape, head, seed)
      : valid.family === 'vit' ? buildVit(valid, inputShape, head, seed)
        : buildLayers(valid);
  const params = model.countParams();
  if (params > MAX_PARAMS) throw new InvalidFieldError('model', `at most ${MAX_PARAMS} parameters`, String(params));
  return model;
}

/** The model's topology as TF.js Layers JSON (what trainers rebuild the model from). */
export function topologyJson(model: tf.LayersModel): string {
  return model.toJSON(undefined, true) as string;
}

/** Rebuilds a model from its topology JSON (weights are set separately). */
export async function modelFromTopology(json: string): Promise<tf.LayersModel> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new InvalidFieldError('model.topology_json', 'TF.js Layers JSON', 'text that does not parse');
  }
  return tf.models.modelFromJSON({ modelTopology: parsed as tf.io.ModelJSON['modelTopology'] });
}
