/**
 * Settings of the TF.js backends that a role's config resolves (from flags or environment) and
 * sets once, before a backend is selected. Library code reads them here, never the environment.
 */

/** What a role may set. */
export interface BackendSettings {
  /**
   * Run webgpu on no GPU at all: Dawn's OpenGL ES backend (WebGPU's compatibility mode) over
   * Mesa's llvmpipe, headless through EGL's surfaceless platform. It is far slower than wasm and
   * exists for one thing: running the project's WGSL kernels in tests and CI on machines without
   * a GPU (Debian's libegl-mesa0 and libgl1-mesa-dri).
   */
  webGpuSoftware: boolean;
  /** Layer norm as one op on webgpu (`layer-norm.ts`); false: tfjs's composite (a baseline). */
  fusedLayerNorm: boolean;
  /**
   * On webgpu, training steps of a full batch are recorded once and replayed (`step-replay.ts`);
   * false: every kernel of every step is issued through TF.js.
   */
  replaySteps: boolean;
}

const settings: BackendSettings = { webGpuSoftware: false, fusedLayerNorm: true, replaySteps: true };

/** Sets some of the backend settings. */
export function configureBackends(s: Partial<BackendSettings>): void {
  Object.assign(settings, s);
}

/** The backend settings in force. */
export function backendSettings(): Readonly<BackendSettings> {
  return settings;
}
