/**
 * Writes a Layers model as TF.js files (`model.json` + `weights.bin`), loadable with
 * `tf.loadLayersModel`, without the native tfjs-node file handler; a model with the project's
 * own layers (the ViT) gets `aq-layers.js` beside it, which stock TF.js needs to load it
 * (portable-layers.ts); and the same model as ONNX, `model.onnx` (onnx-export.ts).
 */
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ONNX_FILE, toOnnx } from './onnx-export.js';
import { PORTABLE_LAYERS_FILE, portableLayersSource, usesProjectLayers } from './portable-layers.js';

/** The files {@link saveModelFiles} wrote. */
export interface SavedModel {
  modelJson: string;
  weights: string;
  onnx: string;
  /** The script of the project's layers, for a model that needs it. */
  layers?: string;
}

/** Saves `model` into `dir` (TF.js and ONNX) and returns the written paths. */
export async function saveModelFiles(model: tf.LayersModel, dir: string): Promise<SavedModel> {
  await fs.mkdir(dir, { recursive: true });
  const modelJson = path.join(dir, 'model.json');
  const weights = path.join(dir, 'weights.bin');
  await model.save(tf.io.withSaveHandler(async (artifacts) => {
    const data = artifacts.weightData;
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : Buffer.concat((data ?? []).map((b) => new Uint8Array(b)));
    await fs.writeFile(`${weights}.tmp`, bytes);
    await fs.rename(`${weights}.tmp`, weights);
    const json = {
      format: 'layers-model',
      generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
      convertedBy: null,
      modelTopology: artifacts.modelTopology,
      weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
    };
    await fs.writeFile(`${modelJson}.tmp`, JSON.stringify(json));
    await fs.rename(`${modelJson}.tmp`, modelJson);
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: bytes.byteLength } };
  }));
  const onnx = path.join(dir, ONNX_FILE);
  await fs.writeFile(`${onnx}.tmp`, toOnnx(model, `Actiquest model ${model.name}: input "input" [batch, ...] channels last, as the TF.js model takes it; output "output"`));
  await fs.rename(`${onnx}.tmp`, onnx);
  const layers = path.join(dir, PORTABLE_LAYERS_FILE);
  if (!usesProjectLayers(model.toJSON(undefined, true) as string)) {
    await fs.rm(layers, { force: true });
    return { modelJson, weights, onnx };
  }
  await fs.writeFile(`${layers}.tmp`, await portableLayersSource());
  await fs.rename(`${layers}.tmp`, layers);
  return { modelJson, weights, onnx, layers };
}

/** Loads a model written by {@link saveModelFiles}. */
export async function loadModelFiles(dir: string): Promise<tf.LayersModel> {
  const json = JSON.parse(await fs.readFile(path.join(dir, 'model.json'), 'utf8')) as tf.io.ModelJSON;
  const weightData = await fs.readFile(path.join(dir, 'weights.bin'));
  return tf.loadLayersModel(tf.io.fromMemory({
    modelTopology: json.modelTopology,
    weightSpecs: json.weightsManifest[0]!.weights,
    weightData: weightData.buffer.slice(weightData.byteOffset, weightData.byteOffset + weightData.byteLength),
  }));
}
