/**
 * TF.js backends, best first: `tensorflow` (the optional native `@tensorflow/tfjs-node-gpu` or
 * `-node`, used only when installed), `webgpu`, `wasm` (the default here), `cpu`.
 *
 * WebGPU in Node comes from the optional `webgpu` package (Dawn, through Vulkan on Linux): its
 * `navigator.gpu` is installed before `@tensorflow/tfjs-backend-webgpu` loads, and the backend
 * counts only if Dawn finds an adapter (a GPU and its Vulkan driver). On webgpu, reads must be
 * async (`dataSync` throws in Node) and the project's conv backprop kernels replace the stock
 * ones (conv-grad.ts).
 */
import { backendSettings } from './settings.js';
import * as tf from '@tensorflow/tfjs';
import os from 'node:os';
import { InvalidFieldError } from '../errors.js';
import { registerBnActKernels } from './bn-act.js';
import { registerConvKernels } from './conv-grad.js';
import { registerLayerNormKernels } from './layer-norm.js';
import { registerTransposeFirstMatMul } from './matmul-fix.js';
import { registerReduceGrads } from './reduce-grad.js';

import { BACKENDS, type BackendName } from './contract.js';

export { BACKENDS, type BackendName };

/** What was chosen. */
export interface BackendInfo {
  backend: string;
  device: string;
}

/** True when a backend's package is already loaded (e.g. bundled with the program). */
const registered = (name: string) => tf.findBackendFactory(name) !== null;

async function tryImport(name: string): Promise<boolean> {
  try {
    await import(name);
    return true;
  } catch {
    return false;
  }
}

/** Each loader: true once its backend can be set, else why not. */
const LOADERS: Readonly<Record<Exclude<BackendName, 'auto'>, () => Promise<true | string>>> = {
  tensorflow: async () => (await tryImport('@tensorflow/tfjs-node-gpu')) || (await tryImport('@tensorflow/tfjs-node')) || '@tensorflow/tfjs-node(-gpu) is not installed',
  webgpu: async () => {
    const gpu = await installNavigatorGpu();
    if (gpu !== true) return gpu;
    return registered('webgpu') || (await tryImport('@tensorflow/tfjs-backend-webgpu')) || '@tensorflow/tfjs-backend-webgpu is not installed';
  },
  wasm: async () => registered('wasm') || (await tryImport('@tensorflow/tfjs-backend-wasm')) || '@tensorflow/tfjs-backend-wasm is not installed',
  cpu: () => Promise.resolve(true),
};

/**
 * Per-dispatch overhead, not GPU time, bounds a training step on webgpu in Node (measured on an
 * H100: 76 ms of kernels in a 607 ms CNN step). Submitting 200 dispatches at a time instead of
 * 15, and never moving small ops to the CPU (which reads their inputs back), made that step
 * 352 ms (bench:train).
 */
function tuneWebGpu(): void {
  tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', 200);
  tf.env().set('WEBGPU_CPU_FORWARD', false);
  tf.env().set('WEBGPU_CPU_HANDOFF_SIZE_THRESHOLD', 0);
}

/** What Dawn said about the GPU it found (set once the webgpu backend loads). */
let gpuDescription = '';

/** True when webgpu is to run on Mesa's llvmpipe instead of a GPU (`settings.ts`). */
export const webGpuSoftware = () => backendSettings().webGpuSoftware;

type Gpu = { requestAdapter(o?: Record<string, unknown>): Promise<unknown> };

/**
 * Gives Node a `navigator.gpu` from the `webgpu` package (a browser already has one) and checks
 * that it offers an adapter; false when the package is missing or no GPU is usable.
 */
export async function installNavigatorGpu(): Promise<true | string> {
  // Asked once: Dawn logs its limits each time an adapter is made.
  if (gpuDescription) return true;
  const g = globalThis as { navigator?: { gpu?: Gpu } };
  const software = webGpuSoftware();
  if (!g.navigator?.gpu) {
    let mod: { create(flags: string[]): unknown; globals: Record<string, unknown> };
    try {
      mod = (await import('webgpu')) as typeof mod;
    } catch (err) {
      return `the webgpu package does not load (${(err as Error).message.split('\n')[0]})`;
    }
    Object.assign(globalThis, mod.globals);
    let gpu: Gpu;
    if (software) {
      // Mesa reads its platform from the environment: headless, unless the user chose one.
      process.env.EGL_PLATFORM ??= 'surfaceless';
      const gles = mod.create(['backend=opengles']) as Gpu & { wgslLanguageFeatures?: unknown };
      // tfjs-webgpu asks for a plain adapter; OpenGL ES offers only compatibility-mode ones.
      gpu = { requestAdapter: (o = {}) => gles.requestAdapter({ ...o, featureLevel: 'compatibility' }), wgslLanguageFeatures: gles.wgslLanguageFeatures } as Gpu;
    } else {
      gpu = mod.create([]) as Gpu;
    }
    if (g.navigator) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
    else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true });
  }
  try {
    const adapter = (await g.navigator!.gpu!.requestAdapter({ powerPreference: 'high-performance' })) as {
      isFallbackAdapter?: boolean; info?: { vendor?: string; architecture?: string; description?: string; isFallbackAdapter?: boolean };
    } | null;
    if (!adapter) return software ? 'no software adapter (AQ_WEBGPU_SOFTWARE=1 needs Mesa\'s EGL and llvmpipe: libegl-mesa0, libgl1-mesa-dri)' : 'no GPU adapter (no GPU, or no Vulkan driver for it)';
    // A software rasteriser (Vulkan's lavapipe, say) is slower than wasm: not a GPU, unless asked for.
    if (!software && (adapter.isFallbackAdapter || adapter.info?.isFallbackAdapter)) return 'only a software (fallback) adapter';
    const info = adapter.info ?? {};
    gpuDescription = `${software ? 'software (AQ_WEBGPU_SOFTWARE): ' : ''}${[info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || 'gpu'}`;
    return true;
  } catch (err) {
    return `requesting a GPU adapter failed (${(err as Error).message})`;
  }
}

/**
 * Activates `want` (or, for `auto`, the best one that loads) and returns what is in use.
 * A forced backend that cannot load is an error naming it, never a silent fallback.
 */
export async function selectBackend(want: string = 'auto'): Promise<BackendInfo> {
  // tfjs-backend-wasm's Emscripten runtime adds process listeners that rethrow every uncaught
  // exception and unhandled rejection, so any stray rejection would end the process with
  // status 7 before the process's own failure policy (bin/actiquest.ts) could close it cleanly.
  const before = { uncaughtException: process.listeners('uncaughtException'), unhandledRejection: process.listeners('unhandledRejection') };
  try {
    return await select(want);
  } finally {
    for (const l of process.listeners('uncaughtException')) if (!before.uncaughtException.includes(l)) process.off('uncaughtException', l);
    for (const l of process.listeners('unhandledRejection')) if (!before.unhandledRejection.includes(l)) process.off('unhandledRejection', l);
  }
}

async function select(want: string): Promise<BackendInfo> {
  if (!(BACKENDS as readonly string[]).includes(want)) {
    throw new InvalidFieldError('backend', BACKENDS.join(', '), JSON.stringify(want));
  }
  const order = want === 'auto' ? (['tensorflow', 'webgpu', 'wasm', 'cpu'] as const) : [want as Exclude<BackendName, 'auto'>];
  const why: string[] = [];
  for (const name of order) {
    const loaded = await LOADERS[name]();
    if (loaded !== true) {
      why.push(`${name}: ${loaded}`);
      continue;
    }
    try {
      registerReduceGrads();
      if (name === 'wasm' || name === 'webgpu') registerConvKernels(name);
      if (name === 'wasm') registerTransposeFirstMatMul(name);
      if (name === 'webgpu') {
        registerBnActKernels();
        registerLayerNormKernels();
      }
      if (await tf.setBackend(name)) {
        await tf.ready();
        if (name === 'webgpu') tuneWebGpu();
        return { backend: name, device: name === 'webgpu' ? gpuDescription : `${os.cpus()[0]?.model ?? 'cpu'} x${os.cpus().length}` };
      }
      why.push(`${name}: it did not initialise`);
    } catch (err) {
      why.push(`${name}: ${(err as Error).message}`);
    }
  }
  throw new InvalidFieldError('backend', `a backend that loads here (${why.join('; ')})`, JSON.stringify(want));
}
