/**
 * What the coordinator's process needs of a model without TF.js: the spec's types and field
 * checks, a family's parameter count, the head's outputs, the budgets and the checks of a cost
 * against them, and the names of the exported files. Everything that builds or runs a model
 * (TF.js) lives in the job's model process (`src/rounds/model-process.ts`), so the coordinator's
 * heap never holds TF.js, and a researcher's topology is first interpreted there.
 */
import { InvalidFieldError } from '../errors.js';
import { NUM_JOINTS } from '../skeleton/index.js';

/** Backends a user may ask for (a job's model process takes the coordinator's `--model-backend`). */
export const BACKENDS = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

/**
 * Classes, or COCO keypoints. A classes head with `steps` (the work-step task) has 2 x steps
 * classes: each step in order, then each step out of order; it is scored by step accuracy (the
 * step right, whatever the flag) and the F1 of the out-of-order flag.
 */
export type Head = { kind: 'classes'; numClasses: number; steps?: number } | { kind: 'keypoints' };

/** Outputs of the model's last layer. */
export function headUnits(head: Head): number {
  return head.kind === 'classes' ? head.numClasses : NUM_JOINTS * 2;
}

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

/** An image input's height, width and channels; a family for images refused on a flat input. */
export function imageShape(inputShape: number[], family: string): [number, number, number] {
  if (inputShape.length !== 3) throw new InvalidFieldError('model.family', `a family for flat inputs (the task's input is ${inputShape.join(' x ')})`, JSON.stringify(family));
  return inputShape as [number, number, number];
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

/** The budgets a model must fit (edge devices, and the coordinator that evaluates it). */
export interface ModelBudget {
  maxParams: number;
  /** Forward FLOPs a sample. */
  maxFlops: number;
  /** Activation memory of a training step or a validation-gradient pass at the job's largest batch ({@link activationBytes}). */
  maxActivationBytes: number;
}

/**
 * Default budgets: MobileNetV2-sized (3.5M parameters, 0.6 GFLOPs at 224 x 224) and below, and
 * 1 GiB of activations (the wasm backend's whole memory is 4 GiB, shared by every job).
 */
export const DEFAULT_BUDGET: ModelBudget = { maxParams: 5_000_000, maxFlops: 1_000_000_000, maxActivationBytes: 1 << 30 };

/** The batch the coordinator's validation passes (loss, gradient) run at. */
export const EVAL_BATCH = 64;

/**
 * Memory a training step (or the coordinator's validation gradient) takes for activations at
 * `batch`: every layer's float32 output, kept for the backward pass, and its gradient.
 */
export function activationBytes(cost: Pick<ModelCost, 'activations'>, batch: number): number {
  return cost.activations * 4 * 2 * batch;
}

/** What a topology was found to be. */
export interface ModelCost {
  params: number;
  flops: number;
  layers: number;
  inputShape: number[];
  outputShape: number[];
  /** The activation of the layer that makes the output. */
  outputActivation: string;
  /** Floats every layer's output holds for one sample, summed (what a backward pass keeps). */
  activations: number;
}

/**
 * Checks a topology's cost against budgets and its shapes against a task's: input `inputShape`,
 * output `[outputUnits]`, and a softmax output when the task's head wants class probabilities.
 */
export function checkCost(cost: ModelCost, budget: ModelBudget, inputShape: number[], outputUnits: number, softmax: boolean, field = 'model', batch = EVAL_BATCH): void {
  if (cost.params > budget.maxParams) {
    throw new InvalidFieldError(field, `at most ${budget.maxParams.toLocaleString('en-US')} parameters (the coordinator's --max-params budget)`, `${cost.params.toLocaleString('en-US')} parameters`);
  }
  if (cost.flops > budget.maxFlops) {
    throw new InvalidFieldError(field, `at most ${budget.maxFlops.toLocaleString('en-US')} forward FLOPs a sample (the coordinator's --max-flops budget)`, `${cost.flops.toLocaleString('en-US')} FLOPs`);
  }
  const bytes = activationBytes(cost, batch);
  if (bytes > budget.maxActivationBytes) {
    throw new InvalidFieldError(field, `at most ${mib(budget.maxActivationBytes)} of activations for a step at batch ${batch} (the coordinator's --max-activation-bytes budget)`,
      `${mib(bytes)} (${cost.activations.toLocaleString('en-US')} floats a sample)`);
  }
  if (cost.inputShape.join('x') !== inputShape.join('x')) {
    throw new InvalidFieldError(`${field} input shape`, `[${inputShape.join(', ')}] (the task's input)`, `[${cost.inputShape.join(', ')}]`);
  }
  if (cost.outputShape.join('x') !== String(outputUnits)) {
    throw new InvalidFieldError(`${field} output shape`, `[${outputUnits}] (the task's head)`, `[${cost.outputShape.join(', ')}]`);
  }
  if (softmax && cost.outputActivation !== 'softmax') {
    throw new InvalidFieldError(`${field} output activation`, '"softmax" (the task predicts class probabilities)', JSON.stringify(cost.outputActivation));
  }
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toLocaleString('en-US', { maximumFractionDigits: 1 })} MiB`;

/**
 * The checks of a spec that need neither TF.js nor a model built: its fields, and a family's
 * parameter count against the budget. A `layers` topology's whole cost (its layers' shapes,
 * parameters, FLOPs and activations) is worked out by `precheckModel` (budget.ts) in the job's
 * model process, before the model is built. Returns the validated spec.
 */
export function precheckSpec(spec: unknown, inputShape: number[], head: Head, budget: ModelBudget): ModelSpec {
  const valid = validateModelSpec(spec);
  if (valid.family === 'layers') return valid;
  const softmax = head.kind === 'classes';
  const estimate = familyParams(valid, inputShape, head);
  if (estimate > budget.maxParams) checkCost({ params: estimate, flops: 0, layers: 0, activations: 0, inputShape, outputShape: [headUnits(head)], outputActivation: softmax ? 'softmax' : 'sigmoid' }, budget, inputShape, headUnits(head), softmax);
  return valid;
}

/** The operator set the exported models use (ONNX Runtime 1.12 and later run it). */
export const ONNX_OPSET = 17;
/** The ONNX IR version written (the one opset 17 came with). */
export const ONNX_IR_VERSION = 8;
/** The names of the exported graph's input and output. */
export const ONNX_INPUT = 'input';
export const ONNX_OUTPUT = 'output';
/** The file name of the exported model beside the TF.js files. */
export const ONNX_FILE = 'model.onnx';

/** The file name of the script beside a model. */
export const PORTABLE_LAYERS_FILE = 'aq-layers.js';
