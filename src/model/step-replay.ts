/**
 * A training step recorded once on webgpu and replayed: the same dispatches and copies,
 * encoded again from a list, with no TF.js in between.
 *
 * On webgpu in Node a step's cost is issuing its kernels, not running them: on an H200 at batch
 * 256, the pose CNN's step issued kernel by kernel took 19.1 ms for 3.1 ms of GPU kernel time,
 * the rest being TF.js working out each kernel (shapes, shader keys, uniforms, bind groups) in
 * JavaScript (bench:train, docs/performance.md). For a fixed model and batch shape that work
 * comes out the same every step, so it is done once:
 *
 * - **Recording.** While one step runs through TF.js as usual, every dispatch (pipeline, bind
 *   group, workgroups) and every buffer copy it encodes is listed. Each uniform buffer it writes
 *   and each upload it makes (a scalar, say) gets a buffer of its own, kept, so their contents
 *   stay as they were; the pool buffers the step used for its intermediate tensors are taken
 *   out of the pool once the step is over, so nothing else is ever given them.
 * - **Checks.** Two steps are recorded; they must issue the same kernels with the same
 *   uniforms and uploads. Every buffer the step touches must be one of: a variable (updated in
 *   place: FlatAdam, the fused batch norm's moving statistics), an input slot the caller
 *   declared (written before each step), a buffer a participant declared through
 *   {@link Recording.keep} (FlatAdam's), or one the step itself made. A step that reads data
 *   back, writes a buffer from the CPU, reassigns a variable, keeps a tensor of its own alive,
 *   or reads a tensor it was not given is not replayed, with that reason.
 * - **Replay.** The inputs are written into the slots, the participants' hooks run (FlatAdam
 *   writes the next step's coefficients), the list is encoded into one command buffer and
 *   submitted; the call returns then, with the loss to come once the GPU is done, so the next
 *   step can be issued meanwhile. Before each, the variables' and slots' buffers are
 *   checked to be the ones recorded (setting a model's weights gives its variables new ones);
 *   when they are not, the next steps record again.
 *
 * The replayed step computes exactly what the recorded one did: the same kernels on the same
 * buffers in the same order (step-replay.test.ts compares the weights after steps of each).
 */
import * as tf from '@tensorflow/tfjs';
import { flush, gpuInternals, MAP_READ_MODE, USAGE, wroteOnGpu, type Buf, type Encoder, type Pass, type WebGpuInternals } from './gpu-internals.js';

type Op =
  | { kind: 'dispatch'; pipeline: object; group: object; x: number; y: number; z: number }
  | { kind: 'copy'; src: Buf; srcOffset: number; dst: Buf; dstOffset: number; size: number };

/** What a participant in a recorded step asks of its replays. */
interface Kept { beforeReplay: () => void; valid: () => boolean }

/** A step being recorded (see the file's comment). */
export class Recording {
  readonly ops: Op[] = [];
  /** Buffers each bind group made during the step binds. */
  readonly groups = new Map<object, Buf[]>();
  /** Uniform buffers and upload staging made for the step, with what they hold. */
  readonly made = new Map<Buf, Uint8Array>();
  /** Buffers the pool gave the step. */
  readonly acquired = new Set<Buf>();
  /** Buffers and bind groups participants keep, and their hooks. */
  readonly kept = new Set<Buf>();
  readonly hooks: Kept[] = [];
  /** Why this step cannot be replayed, once known. */
  invalid: string | null = null;
  private readonly restore: (() => void)[] = [];
  private uniform = false;

  constructor(private readonly gpu: WebGpuInternals) {}

  /** Declares buffers and bind groups a participant keeps across steps, and what a replay must do first. */
  keep(buffers: Buf[], groups: object[], beforeReplay: () => void, valid: () => boolean): void {
    for (const b of buffers) this.kept.add(b);
    for (const g of groups) this.groups.set(g, buffers);
    this.hooks.push({ beforeReplay, valid });
  }

  private patch<T extends object, K extends keyof T>(obj: T, key: K, make: (orig: T[K]) => T[K]): void {
    const own = Object.prototype.hasOwnProperty.call(obj, key);
    const prev = obj[key];
    const orig = typeof prev === 'function' ? (prev as (...a: unknown[]) => unknown).bind(obj) as T[K] : prev;
    obj[key] = make(orig);
    this.restore.push(() => {
      if (own) obj[key] = prev;
      else delete obj[key];
    });
  }

  private bytesOf(data: ArrayBufferView | ArrayBuffer, offset = 0, size?: number): Uint8Array {
    const u8 = ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
    return u8.slice(offset, size === undefined ? undefined : offset + size);
  }

  private wrapPass(pass: Pass): Pass {
    let pipeline: object | null = null;
    let group: object | null = null;
    this.patch(pass, 'setPipeline', (orig) => (p) => {
      pipeline = p;
      orig(p);
    });
    this.patch(pass, 'setBindGroup', (orig) => (i, g) => {
      if (i !== 0) this.invalid ??= 'binds a second bind group';
      group = g;
      orig(i, g);
    });
    this.patch(pass, 'dispatchWorkgroups', (orig) => (x, y = 1, z = 1) => {
      if (!pipeline || !group) this.invalid ??= 'dispatches without a pipeline or bind group';
      else this.ops.push({ kind: 'dispatch', pipeline, group, x, y, z });
      orig(x, y, z);
    });
    return pass;
  }

  private wrapEncoder(enc: Encoder): void {
    this.patch(enc, 'beginComputePass', (orig) => (d) => {
      if (d && Object.keys(d).length > 0) this.invalid ??= 'times its passes (profiling)';
      return this.wrapPass(orig(d));
    });
    this.patch(enc, 'copyBufferToBuffer', (orig) => (src, srcOffset, dst, dstOffset, size) => {
      this.ops.push({ kind: 'copy', src, srcOffset, dst, dstOffset, size });
      orig(src, srcOffset, dst, dstOffset, size);
    });
  }

  /** Starts listing what the backend does. */
  start(): void {
    const gpu = this.gpu;
    flush(gpu);
    this.patch(gpu, 'ensureCommandEncoderReady', (orig) => () => {
      const had = gpu.commandEncoder;
      orig();
      if (gpu.commandEncoder && gpu.commandEncoder !== had) this.wrapEncoder(gpu.commandEncoder);
    });
    this.patch(gpu.device, 'createBindGroup', (orig) => (d) => {
      const g = orig(d);
      const bufs: Buf[] = [];
      for (const e of d.entries) {
        if (e.resource.buffer) bufs.push(e.resource.buffer);
        else this.invalid ??= 'binds a texture';
      }
      this.groups.set(g, bufs);
      return g;
    });
    this.patch(gpu.bufferManager, 'acquireBuffer', (orig) => (size, usage, mapped, reuse) => {
      const b = orig(size, usage, mapped, reuse);
      this.acquired.add(b);
      return b;
    });
    // A uniform buffer of its own for each dispatch, kept with what was written into it.
    this.patch(gpu, 'makeUniforms', (orig) => (u) => {
      this.uniform = true;
      const r = orig(u);
      this.uniform = false;
      const i = gpu.uniformPendingDisposal.lastIndexOf(r.buffer);
      if (i >= 0) gpu.uniformPendingDisposal.splice(i, 1);
      this.acquired.delete(r.buffer);
      disown(gpu, r.buffer, 'used');
      return r;
    });
    this.patch(gpu.queue, 'writeBuffer', (orig) => (b, offset, data, dataOffset, size) => {
      if (this.uniform) this.made.set(b, this.bytesOf(data, dataOffset, size));
      else if (!this.kept.has(b)) this.invalid ??= 'writes a GPU buffer from the CPU';
      orig(b, offset, data, dataOffset, size);
    });
    // Values from the CPU (scalars, say) go through staging buffers of their own, kept, and a
    // recorded copy: as tfjs-webgpu uploads them, but never into a buffer mapped at creation.
    this.patch(gpu, 'uploadToGPU', (orig) => (dataId) => {
      const d = gpu.tensorMap.get(dataId);
      if (!d || d.resource != null || d.values == null) return orig(dataId);
      const size = 4 * d.shape.reduce((a, b) => a * b, 1);
      const dst = gpu.bufferManager.acquireBuffer(size, USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST);
      const staging = gpu.device.createBuffer({ size, usage: USAGE.COPY_SRC, mappedAtCreation: true });
      const range = staging.getMappedRange();
      if (d.dtype === 'int32' || d.dtype === 'bool') new Int32Array(range).set(d.values as ArrayLike<number>);
      else new Float32Array(range).set(d.values as ArrayLike<number>);
      this.made.set(staging, new Uint8Array(range).slice());
      staging.unmap();
      gpu.ensureCommandEncoderReady();
      gpu.endComputePassEncoder();
      gpu.commandEncoder!.copyBufferToBuffer(staging, 0, dst, 0, size);
      d.values = null;
      d.resource = dst;
    });
    this.patch(gpu, 'getBufferData', (orig) => (b) => {
      this.invalid ??= 'reads data back within the step';
      return orig(b);
    });
  }

  /** Stops listing (the step's own commands stay in the backend's encoder). */
  stop(): void {
    for (const r of this.restore.reverse()) r();
    this.restore.length = 0;
  }

  /** What two recordings must share: kernels, their workgroups, uniforms, uploads, copy sizes. */
  signature(): string {
    const ids = new Map<object, number>();
    const id = (o: object) => ids.get(o) ?? (ids.set(o, ids.size), ids.size - 1);
    const made = (b: Buf) => (this.made.has(b) ? `=${Buffer.from(this.made.get(b)!).toString('base64')}` : `#${b.size}`);
    return this.ops.map((o) => (o.kind === 'dispatch'
      ? `d${id(o.pipeline)}:${o.x},${o.y},${o.z}:${(this.groups.get(o.group) ?? []).map(made).join(',')}`
      : `c${o.size}:${made(o.src)}`)).join(';');
  }

  /** Frees what was made for the recording (when it is not replayed). */
  discard(): void {
    for (const b of this.made.keys()) b.destroy();
    this.made.clear();
  }
}

let active: Recording | null = null;

/** The targets' tensors a step reads, in the order their slots follow the input's. */
export const TARGET_KEYS = ['labels', 'coords', 'mask', 'torso'] as const;

/** The recording under way, for participants that keep buffers of their own (FlatAdam). */
export const recording = (): Recording | null => active;

const keyOf = (b: Buf) => `${b.size}_${b.usage}`;

/** Takes a buffer out of tfjs-webgpu's pool accounting: from its free list, or its list of buffers in use. */
function disown(gpu: WebGpuInternals, b: Buf, from: 'free' | 'used'): boolean {
  const m = gpu.bufferManager;
  const list = (from === 'free' ? m.freeBuffers : m.usedBuffers).get(keyOf(b));
  const i = list?.indexOf(b) ?? -1;
  if (i < 0) return false;
  list!.splice(i, 1);
  if (from === 'free') m.numFreeBuffers--;
  else {
    m.numUsedBuffers--;
    m.numBytesUsed -= b.size;
  }
  m.numBytesAllocated -= b.size;
  return true;
}

/** Gives a buffer taken for a replay back to tfjs-webgpu's pool. */
function giveBack(gpu: WebGpuInternals, b: Buf): void {
  const m = gpu.bufferManager;
  const k = keyOf(b);
  if (!m.freeBuffers.has(k)) m.freeBuffers.set(k, []);
  m.freeBuffers.get(k)!.push(b);
  m.numFreeBuffers++;
  m.numBytesAllocated += b.size;
}

/** A recorded step, ready to replay. */
class Replay {
  private readonly reads: Buf[] = [];
  private readonly busy = new Set<Buf>();
  private disposed = false;

  constructor(
    private readonly gpu: WebGpuInternals,
    private readonly rec: Recording,
    /** Pool buffers taken for it (given back on dispose). */
    private readonly taken: Buf[],
    /** Each variable and slot with the buffer the recording used. */
    private readonly holders: { t: tf.Tensor; buf: Buf }[],
    private readonly loss: Buf,
  ) {}

  get dispatches(): number {
    return this.rec.ops.filter((o) => o.kind === 'dispatch').length;
  }

  /** True while every variable and slot holds the buffer recorded, and every participant agrees. */
  valid(): boolean {
    for (const h of this.holders) {
      if (h.t.isDisposed || this.gpu.tensorMap.get(h.t.dataId)?.resource !== h.buf) return false;
    }
    return this.rec.hooks.every((k) => k.valid());
  }

  /** Milliseconds the last replay took to encode and submit. */
  issueMs = 0;

  /** Issues the step; returns once it is submitted, with its loss to come. */
  run(): Promise<number> {
    const gpu = this.gpu;
    const t0 = performance.now();
    flush(gpu);
    for (const k of this.rec.hooks) k.beforeReplay();
    const enc: Encoder = gpu.device.createCommandEncoder();
    let pass: Pass | null = null;
    let pipeline: object | null = null;
    for (const o of this.rec.ops) {
      if (o.kind === 'dispatch') {
        if (!pass) {
          pass = enc.beginComputePass();
          pipeline = null;
        }
        if (o.pipeline !== pipeline) pass.setPipeline((pipeline = o.pipeline));
        pass.setBindGroup(0, o.group);
        pass.dispatchWorkgroups(o.x, o.y, o.z);
      } else {
        if (pass) pass.end();
        pass = null;
        enc.copyBufferToBuffer(o.src, o.srcOffset, o.dst, o.dstOffset, o.size);
      }
    }
    if (pass) pass.end();
    // A read buffer a step in flight: the next step may be issued before this one's loss is read.
    const read = this.reads.find((b) => !this.busy.has(b)) ?? this.newRead();
    this.busy.add(read);
    enc.copyBufferToBuffer(this.loss, 0, read, 0, 4);
    gpu.queue.submit([enc.finish()]);
    for (const h of this.holders) wroteOnGpu(gpu, h.t);
    this.issueMs = performance.now() - t0;
    return read.mapAsync(MAP_READ_MODE).then(() => {
      const loss = new Float32Array(read.getMappedRange(0, 4))[0]!;
      read.unmap();
      this.busy.delete(read);
      if (this.disposed) read.destroy();
      return loss;
    });
  }

  private newRead(): Buf {
    const b = this.gpu.device.createBuffer({ size: 4, usage: USAGE.MAP_READ | USAGE.COPY_DST });
    this.reads.push(b);
    return b;
  }

  dispose(): void {
    this.disposed = true;
    flush(this.gpu);
    // Buffers in submitted work are freed once it is done (destroy waits); a loss still being
    // read back is read first.
    this.rec.discard();
    for (const b of this.reads) if (!this.busy.has(b)) b.destroy();
    for (const b of this.taken) giveBack(this.gpu, b);
  }
}

/**
 * Training steps of one shape on webgpu, replayed once recorded (see the file's comment).
 * `slots` are the step's inputs, tensors the caller keeps for as long as this lives; `run`
 * is the step, reading them and returning its loss. Each `step` writes the inputs into the
 * slots (one typed array a slot, of its size) and runs the step.
 */
export class ReplayedSteps {
  private replay: Replay | null = null;
  private first: Recording | null = null;
  private steps = 0;
  /** Recordings in a row that reassigned a variable (a weight shared with a live tensor is given its own buffer once). */
  private reassigned = 0;
  /** Why the step is not replayed, if it is not. */
  refused: string | null = null;
  /** Steps that ran as replays. */
  replays = 0;

  constructor(private readonly slots: tf.Tensor[], private readonly run: () => tf.Scalar, private readonly warmup = 1) {
    if (!gpuInternals()) throw new Error(`ReplayedSteps runs on webgpu, not ${tf.getBackend()}`);
  }

  /** Dispatches a replay issues (0 while not replaying). */
  get dispatches(): number {
    return this.replay?.dispatches ?? 0;
  }

  get replaying(): boolean {
    return this.replay !== null;
  }

  /** Milliseconds the last replay took to encode and submit (0 before the first). */
  get issueMs(): number {
    return this.replay?.issueMs ?? 0;
  }

  /** Runs a step: its loss. */
  async step(inputs: ArrayBufferView[]): Promise<number> {
    return (await this.submit(inputs)).loss;
  }

  /**
   * Writes the inputs and issues the step. A replay resolves as soon as it is submitted, so the
   * caller can prepare and issue the next step while the GPU runs this one, and read this one's
   * loss after; other steps resolve once they are done.
   */
  async submit(inputs: ArrayBufferView[]): Promise<{ loss: Promise<number> }> {
    const gpu = gpuInternals();
    if (!gpu) throw new Error(`ReplayedSteps runs on webgpu, not ${tf.getBackend()}`);
    if (inputs.length !== this.slots.length) throw new Error(`expected ${this.slots.length} inputs, got ${inputs.length}`);
    inputs.forEach((b, i) => {
      if (b.byteLength !== this.slots[i]!.size * 4) throw new Error(`input ${i}: expected ${this.slots[i]!.size * 4} bytes, got ${b.byteLength}`);
    });
    // Each slot in its buffer first: an upload is a copy recorded in the encoder, which the
    // flush submits before the writes.
    for (const s of this.slots) gpu.uploadToGPU(s.dataId);
    flush(gpu);
    this.slots.forEach((s, i) => {
      gpu.queue.writeBuffer(gpu.tensorMap.get(s.dataId)!.resource!, 0, inputs[i]!);
      wroteOnGpu(gpu, s);
    });
    this.steps++;
    if (this.replay && !this.replay.valid()) {
      this.replay.dispose();
      this.replay = null;
    }
    if (this.replay) {
      this.replays++;
      return { loss: this.replay.run() };
    }
    const loss = this.refused || this.steps <= this.warmup ? await this.plain() : await this.recorded(gpu);
    return { loss: Promise.resolve(loss) };
  }

  private async plain(): Promise<number> {
    const loss = tf.tidy(this.run);
    const v = (await loss.data())[0]!;
    loss.dispose();
    return v;
  }

  private async recorded(gpu: WebGpuInternals): Promise<number> {
    const vars = Object.values(tf.engine().registeredVariables);
    const before = new Map(vars.map((v) => [v, gpu.tensorMap.get(v.dataId)?.resource ?? null]));
    const slotBufs = new Set(this.slots.map((s) => gpu.tensorMap.get(s.dataId)!.resource!));
    const rec = new Recording(gpu);
    rec.start();
    active = rec;
    let lossT: tf.Scalar;
    try {
      lossT = tf.tidy(this.run);
    } finally {
      active = null;
      rec.stop();
    }
    const lossBuf = gpu.tensorMap.get(lossT.dataId)?.resource ?? null;
    const value = (await lossT.data())[0]!;
    lossT.dispose();
    flush(gpu);
    const reason = rec.invalid ?? this.check(gpu, rec, vars, before, slotBufs, lossBuf);
    if (reason) {
      rec.discard();
      this.first?.discard();
      this.first = null;
      // Giving a variable a buffer of its own happens once; a step that does it every time is refused.
      if (reason.startsWith('assigns') && ++this.reassigned < 3) return value;
      this.refused = reason;
      return value;
    }
    this.reassigned = 0;
    if (!this.first) {
      this.first = rec;
      return value;
    }
    const same = this.first.signature() === rec.signature();
    this.first.discard();
    this.first = null;
    if (!same) {
      rec.discard();
      this.refused = 'two steps issue different kernels, uniforms or uploads (random numbers, say)';
      return value;
    }
    // Every buffer the step made is the replay's from now on.
    const touched = this.touched(rec);
    const taken = [...touched].filter((b) => rec.acquired.has(b) && !rec.made.has(b));
    for (const b of taken) disown(gpu, b, 'free');
    const holders: { t: tf.Tensor; buf: Buf }[] = [];
    for (const v of vars) {
      const b = before.get(v);
      if (b && touched.has(b)) holders.push({ t: v, buf: b });
    }
    for (const s of this.slots) holders.push({ t: s, buf: gpu.tensorMap.get(s.dataId)!.resource! });
    this.replay = new Replay(gpu, rec, taken, holders, lossBuf!);
    return value;
  }

  private touched(rec: Recording): Set<Buf> {
    const all = new Set<Buf>();
    for (const o of rec.ops) {
      if (o.kind === 'dispatch') for (const b of rec.groups.get(o.group) ?? []) all.add(b);
      else {
        all.add(o.src);
        all.add(o.dst);
      }
    }
    return all;
  }

  /** Why the recorded step cannot be replayed, or null (see the file's comment). */
  private check(gpu: WebGpuInternals, rec: Recording, vars: tf.Variable[], before: Map<tf.Variable, Buf | null>, slots: Set<Buf>, loss: Buf | null): string | null {
    for (const v of vars) {
      if (!v.isDisposed && gpu.tensorMap.get(v.dataId)?.resource !== before.get(v)) return `assigns variable ${v.name} a new tensor rather than updating it in place`;
    }
    if (!loss || !rec.acquired.has(loss)) return 'its loss is not a tensor the step made';
    const varBufs = new Set([...before.values()].filter((b): b is Buf => b !== null));
    for (const o of rec.ops) if (o.kind === 'dispatch' && !rec.groups.has(o.group)) return 'dispatches a bind group made before the step';
    const free = new Set([...gpu.bufferManager.freeBuffers.values()].flat());
    for (const b of this.touched(rec)) {
      if (rec.made.has(b) || rec.kept.has(b) || varBufs.has(b) || slots.has(b)) continue;
      if (!rec.acquired.has(b)) return 'reads a tensor made before the step that is neither a variable nor an input';
      if (!free.has(b)) return 'keeps a tensor it made alive after the step';
    }
    return null;
  }

  dispose(): void {
    this.replay?.dispose();
    this.replay = null;
    this.first?.discard();
    this.first = null;
  }
}
