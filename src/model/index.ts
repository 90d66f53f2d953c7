/**
 * Models: declarative specs (built-in families and TF.js Layers topologies) checked against
 * allowed layers and budgets, flat parameter vectors, local training and evaluation, export, the
 * TF.js backends (wasm, webgpu on Dawn, cpu) and the project's WGSL kernels for webgpu.
 */
export { BACKENDS, selectBackend, type BackendName } from './backend.js';
export { FlatAdam } from './flat-adam.js';
export { ReplayedSteps, TARGET_KEYS } from './step-replay.js';
export { buildCheckedModel, checkOnnxExportable, DEFAULT_BUDGET, precheckModel, type ModelBudget, type ModelCost } from './budget.js';
export { buildModel, modelFromTopology, validateModelSpec, type ModelSpec } from './spec.js';
export { clippedDelta, getFlatParams, setFlatParams } from './params.js';
export { evaluate, lossGradient, trainLocal, type Dataset } from './train.js';
export { autoThreads, TrainThreads } from './train-threads.js';
export { loadModelFiles, saveModelFiles, type SavedModel } from './export.js';
export { onnxUnsupported, toOnnx, ONNX_FILE, ONNX_INPUT, ONNX_IR_VERSION, ONNX_OPSET, ONNX_OUTPUT } from './onnx-export.js';
export { checkOnnx, runOnnx, type OnnxCheck } from './onnx-check.js';
export { PORTABLE_LAYERS_FILE, portableLayersSource, usesProjectLayers } from './portable-layers.js';
export { meanLoss, targetsOf, type Head } from './head.js';
export { registerOnesGrads, registerReduceGrads } from './reduce-grad.js';
export { trainingForward } from './bn-act.js';
export { topologyJson } from './spec.js';
export { headUnits } from './head.js';
export { type Evaluation } from './train.js';
export { backendSettings, configureBackends, type BackendSettings } from './settings.js';
