/**
 * Adam over one flat vector of all the model's trainable parameters. tfjs-core's Adam updates
 * each variable on its own: about 14 kernels a variable a step (326 for the 23 variables of the
 * pose CNN, of a 1,102-kernel step), and on webgpu every one is a dispatch, the cost that bounds
 * a step there. Here the gradients are concatenated once, the moments and the step are computed
 * on the flat vectors (a dozen kernels whatever the variable count), and the new values are
 * split back: about 40 kernels a step. Same update as tf.train.adam:
 *
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   w = w - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 *
 * On webgpu the whole update is one kernel over buffers of its own: the gradients and the
 * variables are copied into flat vectors, the kernel updates the moments and the weights in
 * place, and the weights are copied back into each variable's own buffer. So the variables keep
 * their buffers from step to step, which a replayed step (step-replay.ts) needs, and the step
 * coefficients come from a uniform buffer written before each step rather than from new scalars.
 */
import * as tf from '@tensorflow/tfjs';
import { bufferOf, encoderOf, flush, gpuInternals, ownBuffer, USAGE, wroteOnGpu, type Buf, type WebGpuInternals } from './gpu-internals.js';
import { recording } from './step-replay.js';

const ADAM_WGSL = `
struct Coef { lrt : f32, b1 : f32, omb1 : f32, b2 : f32, omb2 : f32, c2 : f32, eps : f32, n : u32 };
@group(0) @binding(0) var<storage, read_write> w : array<f32>;
@group(0) @binding(1) var<storage, read_write> m : array<f32>;
@group(0) @binding(2) var<storage, read_write> v : array<f32>;
@group(0) @binding(3) var<storage, read> g : array<f32>;
@group(0) @binding(4) var<uniform> c : Coef;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id : vec3<u32>, @builtin(num_workgroups) nw : vec3<u32>) {
  let i = id.y * nw.x * 64u + id.x;
  if (i >= c.n) { return; }
  let gi = g[i];
  let mi = m[i] * c.b1 + gi * c.omb1;
  let vi = v[i] * c.b2 + (gi * gi) * c.omb2;
  m[i] = mi;
  v[i] = vi;
  w[i] = w[i] - (mi * c.lrt) / (sqrt(vi * c.c2) + c.eps);
}`;

/** The webgpu state: flat weights, moments and gradients, the coefficients, one kernel. */
interface GpuState { gpu: WebGpuInternals; w: Buf; m: Buf; v: Buf; g: Buf; coef: Buf; pipeline: object; group: object; workgroups: [number, number]; bufs: Buf[] }

export class FlatAdam extends tf.Optimizer {
  static get className(): string {
    return 'AqFlatAdam';
  }

  private m: tf.Variable | null = null;
  private v: tf.Variable | null = null;
  private step = 0;
  /** The variables (in order) the moments were laid out for. */
  private layout = '';
  private onGpu: GpuState | null = null;
  /** Bumped whenever the moments are laid out anew (a replayed step holds the old buffers). */
  private generation = 0;

  constructor(
    private readonly learningRate: number,
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
    private readonly epsilon = tf.backend().epsilon(),
  ) {
    super();
  }

  override applyGradients(variableGradients: tf.NamedTensorMap | { name: string; tensor: tf.Tensor }[]): void {
    const grads = Array.isArray(variableGradients)
      ? variableGradients
      : Object.keys(variableGradients).map((name) => ({ name, tensor: variableGradients[name]! }));
    if (grads.length === 0) return;
    const registered = tf.engine().registeredVariables;
    const vars = grads.map((g) => {
      const v = registered[g.name];
      if (!v) throw new Error(`FlatAdam: no variable named ${g.name}`);
      return v;
    });
    const layout = grads.map((g, i) => `${g.name}:${vars[i]!.size}`).join(',');
    if (layout !== this.layout) this.reset(layout, vars.reduce((n, v) => n + v.size, 0));
    this.step++;
    if (this.onGpu) {
      this.applyOnGpu(this.onGpu, grads.map((g) => g.tensor), vars);
      this.incrementIterations();
      return;
    }
    const b1t = 1 - this.beta1 ** this.step;
    const b2t = 1 - this.beta2 ** this.step;
    tf.tidy(() => {
      const g = tf.concat(grads.map((x) => tf.reshape(x.tensor, [-1])));
      const m = tf.add(tf.mul(this.m!, this.beta1), tf.mul(g, 1 - this.beta1));
      const v = tf.add(tf.mul(this.v!, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
      this.m!.assign(m);
      this.v!.assign(v);
      const update = tf.div(tf.mul(m, this.learningRate / b1t), tf.add(tf.sqrt(tf.mul(v, 1 / b2t)), this.epsilon));
      const next = tf.sub(tf.concat(vars.map((x) => tf.reshape(x, [-1]))), update);
      const parts = tf.split(next, vars.map((x) => x.size));
      vars.forEach((x, i) => x.assign(tf.reshape(parts[i]!, x.shape)));
    });
    this.incrementIterations();
  }

  /** Writes this step's coefficients (after what was recorded before has been submitted). */
  private writeCoefficients(s: GpuState, n: number): void {
    flush(s.gpu);
    const c = new ArrayBuffer(32);
    new Float32Array(c, 0, 7).set([
      this.learningRate / (1 - this.beta1 ** this.step), this.beta1, 1 - this.beta1, this.beta2, 1 - this.beta2,
      1 / (1 - this.beta2 ** this.step), this.epsilon,
    ]);
    new Uint32Array(c, 28, 1)[0] = n;
    s.gpu.queue.writeBuffer(s.coef, 0, c);
  }

  /** The update as one kernel over flat copies of the gradients and variables (see above). */
  private applyOnGpu(s: GpuState, grads: tf.Tensor[], vars: tf.Variable[]): void {
    const n = vars.reduce((k, v) => k + v.size, 0);
    // A replayed step runs this kernel again: before each, the next step's coefficients.
    const generation = this.generation;
    recording()?.keep(s.bufs, [s.group], () => {
      this.step++;
      this.writeCoefficients(s, n);
    }, () => this.generation === generation && this.onGpu === s);
    this.writeCoefficients(s, n);
    const own = vars.map((v) => ownBuffer(s.gpu, v));
    const enc = encoderOf(s.gpu);
    let at = 0;
    grads.forEach((g, i) => {
      enc.copyBufferToBuffer(bufferOf(s.gpu, g), 0, s.g, at * 4, g.size * 4);
      enc.copyBufferToBuffer(own[i]!, 0, s.w, at * 4, g.size * 4);
      s.gpu.commandQueueOwnedIds.add(g.dataId);
      s.gpu.commandQueueOwnedIds.add(vars[i]!.dataId);
      at += g.size;
    });
    const pass = enc.beginComputePass();
    pass.setPipeline(s.pipeline);
    pass.setBindGroup(0, s.group);
    pass.dispatchWorkgroups(s.workgroups[0], s.workgroups[1]);
    pass.end();
    at = 0;
    vars.forEach((v, i) => {
      enc.copyBufferToBuffer(s.w, at * 4, own[i]!, 0, v.size * 4);
      wroteOnGpu(s.gpu, v);
      at += v.size;
    });
  }

  private reset(layout: string, size: number): void {
    this.release();
    this.step = 0;
    this.layout = layout;
    this.generation++;
    const gpu = gpuInternals();
    if (!gpu) {
      this.m = tf.variable(tf.zeros([size]), false);
      this.v = tf.variable(tf.zeros([size]), false);
      return;
    }
    // New buffers read as zeros: the moments start at 0.
    const make = (usage: number) => gpu.device.createBuffer({ size: size * 4, usage });
    const rw = USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST;
    const [w, m, v, g] = [make(rw), make(USAGE.STORAGE), make(USAGE.STORAGE), make(USAGE.STORAGE | USAGE.COPY_DST)];
    const coef = gpu.device.createBuffer({ size: 32, usage: USAGE.UNIFORM | USAGE.COPY_DST });
    const pipeline = gpu.device.createComputePipeline({ layout: 'auto', compute: { module: gpu.device.createShaderModule({ code: ADAM_WGSL }), entryPoint: 'main' } });
    const group = gpu.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [w, m, v, g, coef].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const blocks = Math.ceil(size / 64);
    const x = Math.min(blocks, 65535);
    this.onGpu = { gpu, w, m, v, g, coef, pipeline, group, workgroups: [x, Math.ceil(blocks / x)], bufs: [w, m, v, g, coef] };
  }

  private release(): void {
    this.m?.dispose();
    this.v?.dispose();
    this.m = this.v = null;
    if (this.onGpu) {
      // Submitted work that uses them finishes first: destroy waits for it.
      flush(this.onGpu.gpu);
      for (const b of this.onGpu.bufs) b.destroy();
      this.onGpu = null;
    }
  }

  override dispose(): void {
    this.release();
    this.layout = '';
    super.dispose();
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { learningRate: this.learningRate, beta1: this.beta1, beta2: this.beta2, epsilon: this.epsilon };
  }
}
