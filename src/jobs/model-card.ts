/**
 * The model card a DONE job writes beside its model (`model-card.json`): what the model is, what
 * it was trained on and how, how well it does on the coordinator's validation data, and the
 * digests of its files (downloads are checked against them).
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { headUnits, ONNX_FILE, ONNX_INPUT, ONNX_IR_VERSION, ONNX_OPSET, ONNX_OUTPUT, PORTABLE_LAYERS_FILE, type ModelCost } from '../model/contract.js';
import { KP } from '../skeleton/index.js';
import { sha256 } from '../wire/index.js';
import type { JobConfig } from './job-config.js';
import type { JobRunner, RoundRecord } from './job-runner.js';
import type { ModelSaved } from '../rounds/index.js';

/** What a card is made of: the job's settings and description, its runner and model cost. */
export interface CardSource {
  config: JobConfig;
  description: string;
  runner: JobRunner | null;
  cost: ModelCost | null;
}

/**
 * The model card: what the model is, what it was trained on and how, how well it does, digests;
 * `saved` is what writing the model found (the ONNX file's check against TF.js).
 */
export async function modelCard(job: CardSource, modelDir: string, saved: ModelSaved): Promise<Record<string, unknown>> {
  const runner = job.runner!;
  const cfg = job.config;
  const task = runner.task;
  const last = runner.history.at(-1);
  const files: Record<string, string> = {};
  for (const f of ['model.json', 'weights.bin', PORTABLE_LAYERS_FILE, ONNX_FILE]) {
    const bytes = await fsp.readFile(path.join(modelDir, f)).catch(() => null);
    if (bytes) files[f] = sha256(bytes).toString('hex');
  }
  const layersScript = PORTABLE_LAYERS_FILE in files;
  const metricValue = (r: RoundRecord | undefined) => (!r ? null : cfg.metric === 'loss' ? r.valLoss : cfg.metric === 'mean_error' ? (r.valMeanError ?? null) : r.valAccuracy);
  return {
    format: 'actiquest-model-card/1',
    jobId: cfg.jobId,
    description: job.description,
    created: new Date().toISOString(),
    task: {
      name: task.name, description: task.description, inputShape: task.inputShape,
      output: task.head.kind === 'classes'
        ? { kind: 'class probabilities (softmax)', classes: task.classes }
        : { kind: 'keypoints: x, y in image units (0 to 1), COCO-17 order', units: headUnits(task.head), keypoints: Object.keys(KP) },
    },
    model: { spec: cfg.model, parameters: runner.paramCount, forwardFlopsPerSample: job.cost?.flops ?? null, layers: job.cost?.layers ?? null, format: `TF.js layers-model (model.json + weights.bin) and ONNX (${ONNX_FILE})`,
      loading: layersScript
        ? `the model uses Actiquest's own layers (AqPositionEmbedding, AqSelfAttention, AqTokenNorm): load ${PORTABLE_LAYERS_FILE} after TF.js (a <script> after tf.min.js; in Node set globalThis.tf to @tensorflow/tfjs, then import it), then tf.loadLayersModel('model.json')`
        : 'stock TF.js: tf.loadLayersModel(\'model.json\')',
      onnx: {
        file: ONNX_FILE, opset: ONNX_OPSET, irVersion: ONNX_IR_VERSION,
        input: { name: ONNX_INPUT, shape: ['batch', ...task.inputShape], type: 'float32', layout: 'as the TF.js model\'s input (channels last for images); see usage' },
        output: { name: ONNX_OUTPUT, shape: ['batch', headUnits(task.head)], type: 'float32' },
        checked: { ...saved.onnx, against: 'the TF.js model on the coordinator\'s validation data' },
      } },
    training: {
      rounds: runner.history.length, strategy: cfg.strategy, serverLearningRate: cfg.serverLearningRate || null, localEpochs: cfg.localEpochs,
      batchSize: cfg.batchSize, learningRate: cfg.learningRate, optimizer: cfg.optimizer, cohort: cfg.cohort,
      secureAggregation: cfg.secure ? { minGroupSize: cfg.secure.minGroupSize, clipRange: cfg.secure.clipRange } : null,
      // Trainer-level (user-level) differential privacy of the released sums, hence of the model.
      differentialPrivacy: cfg.dp ? {
        epsilon: runner.privacy.epsilon(cfg.dp.delta), delta: cfg.dp.delta, noiseMultiplier: cfg.dp.noiseMultiplier, clipNorm: cfg.clipNorm,
        epsilonBudget: cfg.dp.epsilonBudget || null, rounds: runner.privacy.rounds,
        unit: 'one trainer\'s whole contribution to a round (its clipped update); RDP of the Gaussian mechanism composed over rounds, no sampling amplification',
      } : null,
    },
    data: {
      datasetNodes: [...new Set(runner.history.flatMap((r) => r.datasets ?? []))].sort(),
      trainers: new Set(runner.history.flatMap((r) => r.reporters)).size,
      samplesSeen: runner.history.reduce((n, r) => n + r.samples, 0) * cfg.localEpochs,
      validation: `${cfg.validationSamples} samples drawn by the coordinator, never sent to trainers`,
    },
    metrics: {
      metric: cfg.metric, value: metricValue(last), valLoss: last?.valLoss ?? null,
      [task.metricName]: last?.valAccuracy ?? null,
      ...(last?.valMeanError !== undefined ? { meanKeypointErrorImageWidths: last.valMeanError } : {}),
      ...(task.head.kind === 'classes' && task.head.steps ? { outOfOrderF1: last?.valOrderF1 ?? null } : {}),
    },
    history: runner.history.map((r) => ({
      round: r.round, participants: r.participants, samples: r.samples, valLoss: r.valLoss, valMetric: r.valAccuracy,
      ...(task.head.kind === 'classes' && task.head.steps ? { outOfOrderF1: r.valOrderF1 } : {}), durationSeconds: r.durationSeconds,
    })),
    usage: { ...task.usage, examples: await cardExamples(runner) },
    files,
  };
}

/** Examples an app checks its own pipeline with. */
const EXAMPLES = 3;

/** Float32 values as base64 of their little-endian bytes (exact, and a third of the JSON). */
const f32 = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('base64');

/**
 * Samples drawn like the validation data (from a seed of their own): the raw sample, the model's
 * input made from it by the card's preprocessing, and what the model outputs.
 */
async function cardExamples(runner: JobRunner): Promise<Record<string, unknown>> {
  const examples = await runner.examples(EXAMPLES);
  return {
    encoding: 'raw and input: base64 of little-endian float32 values, in the layouts above; output: numbers',
    tolerance: 'an app\'s pipeline is right when its input matches to about 1e-5 and its output to about 1e-4',
    samples: examples.map((e) => ({ raw: f32(e.raw), input: f32(e.input), output: Array.from(e.output, (v) => Number(v.toPrecision(7))) })),
  };
}
