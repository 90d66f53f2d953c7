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
import { familyParams, headUnits, imageShape, MAX_PARAMS, validateModelSpec, type CnnSpec, type Head, type LayersSpec, type MlpSpec, type ModelSpec, type VitSpec } from './contract.js';

export { familyParams, MAX_PARAMS, validateModelSpec, type CnnSpec, type LayersSpec, type MlpSpec, type ModelSpec, type VitSpec } from './contract.js';
import { PositionEmbedding, SelfAttention, TokenNorm } from './vit-layers.js';



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
