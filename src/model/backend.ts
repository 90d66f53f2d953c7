/**
 * TF.js backends, best first: `tensorflow` (the optional native `@tensorflow/tfjs-node-gpu` or
 * `-node`, used only when installed), `webgpu`, `wasm` (the default here), `cpu`.
 */
import * as tf from '@tensorflow/tfjs';
import os from 'node:os';
import { InvalidFieldError } from '../errors.js';
import { registerConvKernels } from './conv-grad.js';

/** Backends a user may ask for. */
export const BACKENDS = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

/** What was chosen. */
export interface BackendInfo {
  backend: string;
  device: string;
}

async function tryImport(name: string): Promise<boolean> {
  try {
    await import(name);
    return true;
  } catch {
    return false;
  }
}

const LOADERS: Readonly<Record<Exclude<BackendName, 'auto'>, () => Promise<boolean>>> = {
  tensorflow: async () => (await tryImport('@tensorflow/tfjs-node-gpu')) || (await tryImport('@tensorflow/tfjs-node')),
  webgpu: async () => typeof (globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu !== 'undefined'
    && (await tryImport('@tensorflow/tfjs-backend-webgpu')),
  wasm: () => tryImport('@tensorflow/tfjs-backend-wasm'),
  cpu: async () => true,
};

/**
 * Activates `want` (or, for `auto`, the best one that loads) and returns what is in use.
 * A forced backend that cannot load is an error naming it, never a silent fallback.
 */
export async function selectBackend(want: string = 'auto'): Promise<BackendInfo> {
  if (!(BACKENDS as readonly string[]).includes(want)) {
    throw new InvalidFieldError('backend', BACKENDS.join(', '), JSON.stringify(want));
  }
  const order = want === 'auto' ? (['tensorflow', 'webgpu', 'wasm', 'cpu'] as const) : [want as Exclude<BackendName, 'auto'>];
  for (const name of order) {
    if (!(await LOADERS[name]())) continue;
    try {
      if (name === 'wasm' || name === 'webgpu') registerConvKernels(name);
      if (await tf.setBackend(name)) {
        await tf.ready();
        return { backend: name, device: name === 'webgpu' ? 'gpu' : `${os.cpus()[0]?.model ?? 'cpu'} x${os.cpus().length}` };
      }
    } catch {
      // fall through to the next backend
    }
  }
  throw new InvalidFieldError('backend', `a backend that loads here (tried ${order.join(', ')})`, JSON.stringify(want));
}
