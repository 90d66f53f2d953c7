/**
 * Writes a Layers model as TF.js files (`model.json` + `weights.bin`), loadable with
 * `tf.loadLayersModel`, without the native tfjs-node file handler; a model with the project's
 * own layers (the ViT) gets `aq-layers.js` beside it, which stock TF.js needs to load it
 * (portable-layers.ts).
 */
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { PORTABLE_LAYERS_FILE, portableLayersSource, usesProjectLayers } from './portable-layers.js';

/** Saves `model` into `dir` and returns the written paths (`layers`: the script, when the model needs it). */
export async function saveModelFiles(model: tf.LayersModel, dir: string): Promise<{ modelJson: string; weights: string; layers?: string }> {
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
  const layers = path.join(dir, PORTABLE_LAYERS_FILE);
  if (!usesProjectLayers(model.toJSON(undefined, true) as string)) {
    await fs.rm(layers, { force: true });
    return { modelJson, weights };
  }
  await fs.writeFile(`${layers}.tmp`, await portableLayersSource());
  await fs.rename(`${layers}.tmp`, layers);
  return { modelJson, weights, layers };
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
