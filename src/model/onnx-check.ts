/**
 * Runs an exported ONNX model in ONNX Runtime (onnxruntime-web's wasm build, one thread) on the
 * same inputs as its TF.js model and reports how far apart their outputs are: the export is
 * checked on the validation data before a card names the file.
 */
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-web';
import { ONNX_INPUT, ONNX_OUTPUT } from './onnx-export.js';

ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';

/** What ONNX Runtime gave against TF.js. */
export interface OnnxCheck {
  samples: number;
  /** Largest |ONNX - TF.js| over every output value. */
  maxAbsDiff: number;
  runtime: string;
}

/** ONNX Runtime's outputs for `count` inputs of `inputShape` (no batch axis). */
export async function runOnnx(bytes: Uint8Array, inputs: Float32Array, count: number, inputShape: number[]): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const out = await session.run({ [ONNX_INPUT]: new ort.Tensor('float32', inputs, [count, ...inputShape]) });
    return out[ONNX_OUTPUT]!.data as Float32Array;
  } finally {
    await session.release();
  }
}

/** Runs `bytes` and `model` on `inputs` (at most `limit` samples, in batches of 64) and compares. */
export async function checkOnnx(bytes: Uint8Array, model: tf.LayersModel, inputs: Float32Array, count: number, inputShape: number[], limit = 256): Promise<OnnxCheck> {
  const n = Math.min(count, limit);
  const per = inputs.length / count;
  const session = await ort.InferenceSession.create(bytes);
  let maxAbsDiff = 0;
  try {
    for (let at = 0; at < n; at += 64) {
      const b = Math.min(64, n - at);
      const x = inputs.slice(at * per, (at + b) * per);
      const want = tf.tidy(() => (model.predict(tf.tensor(x, [b, ...inputShape])) as tf.Tensor).dataSync() as Float32Array);
      const got = (await session.run({ [ONNX_INPUT]: new ort.Tensor('float32', x, [b, ...inputShape]) }))[ONNX_OUTPUT]!.data as Float32Array;
      if (got.length !== want.length) throw new Error(`ONNX check: ${got.length} outputs for ${want.length} from TF.js`);
      for (let i = 0; i < got.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(got[i]! - want[i]!));
      if (Number.isNaN(maxAbsDiff)) break;
    }
  } finally {
    await session.release();
  }
  return { samples: n, maxAbsDiff, runtime: `onnxruntime-web ${ort.env.versions.web ?? '?'} (wasm, one thread)` };
}
