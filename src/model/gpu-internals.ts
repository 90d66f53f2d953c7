/**
 * The parts of tfjs-webgpu's backend (4.22) that in-place updates and replayed steps
 * (step-replay.ts) work with: its device and queue, the GPU buffer behind each tensor, its
 * buffer pool, and the command encoder it records dispatches into before submitting them.
 *
 * tfjs-webgpu records up to `WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE` dispatches into one command
 * encoder before submitting it. A tensor disposed while a recorded, unsubmitted command uses it
 * keeps its buffer until that submission (`commandQueueOwnedIds`); anything written from the
 * CPU (`queue.writeBuffer`) lands before every command not yet submitted, so a buffer is written
 * that way only after the encoder is flushed (`flush`).
 */
import * as tf from '@tensorflow/tfjs';

/** A GPUBuffer, as much of it as is used here. */
export interface Buf {
  readonly size: number;
  readonly usage: number;
  destroy(): void;
  getMappedRange(offset?: number, size?: number): ArrayBuffer;
  mapAsync(mode: number): Promise<void>;
  unmap(): void;
}
export interface Pass {
  setPipeline(p: object): void;
  setBindGroup(i: number, g: object): void;
  dispatchWorkgroups(x: number, y?: number, z?: number): void;
  end(): void;
}
export interface Encoder {
  beginComputePass(d?: object): Pass;
  copyBufferToBuffer(src: Buf, srcOffset: number, dst: Buf, dstOffset: number, size: number): void;
  finish(): object;
}
export interface Device {
  createBuffer(d: { size: number; usage: number; mappedAtCreation?: boolean }): Buf;
  createBindGroup(d: { layout: object; entries: { binding: number; resource: { buffer?: Buf } }[] }): object;
  createComputePipeline(d: object): { getBindGroupLayout(i: number): object };
  createShaderModule(d: { code: string }): object;
  createCommandEncoder(): Encoder;
}
export interface Queue {
  writeBuffer(b: Buf, offset: number, data: ArrayBufferView | ArrayBuffer, dataOffset?: number, size?: number): void;
  submit(buffers: object[]): void;
}
export interface TensorData {
  resource: Buf | null;
  values: unknown;
  refCount: number;
  dtype: string;
  shape: number[];
}
export interface BufferManager {
  acquireBuffer(size: number, usage: number, mappedAtCreation?: boolean, reuse?: boolean): Buf;
  freeBuffers: Map<string, Buf[]>;
  usedBuffers: Map<string, Buf[]>;
  numFreeBuffers: number;
  numUsedBuffers: number;
  numBytesUsed: number;
  numBytesAllocated: number;
}
export interface WebGpuInternals {
  device: Device;
  queue: Queue;
  tensorMap: { get(dataId: object): TensorData | undefined };
  bufferManager: BufferManager;
  commandEncoder: Encoder | null;
  commandQueueOwnedIds: WeakSet<object>;
  uniformPendingDisposal: Buf[];
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  uploadToGPU(dataId: object): void;
  makeUniforms(u: unknown): { offset: number; size: number; buffer: Buf };
  getBufferData(b: Buf): Promise<ArrayBuffer>;
}

/** GPUBufferUsage's flags (the global is only there once the webgpu package is loaded). */
export const USAGE = { MAP_READ: 1, MAP_WRITE: 2, COPY_SRC: 4, COPY_DST: 8, UNIFORM: 64, STORAGE: 128 } as const;
export const MAP_READ_MODE = 1;

/** The webgpu backend's internals when it is the active backend, else null. */
export function gpuInternals(): WebGpuInternals | null {
  if (tf.getBackend() !== 'webgpu') return null;
  const b = tf.backend() as unknown as Partial<WebGpuInternals>;
  return b.bufferManager && b.tensorMap && b.device ? b as WebGpuInternals : null;
}

/** The GPU buffer holding `t` (uploading it first if its values are still on the CPU). */
export function bufferOf(gpu: WebGpuInternals, t: tf.Tensor): Buf {
  gpu.uploadToGPU(t.dataId);
  const d = gpu.tensorMap.get(t.dataId);
  if (!d?.resource || typeof (d.resource as Partial<Buf>).getMappedRange !== 'function') throw new Error(`tensor ${t.id} is not held in a GPU buffer`);
  return d.resource;
}

/** Submits what tfjs-webgpu has recorded, so that a CPU write cannot overtake it. */
export function flush(gpu: WebGpuInternals): void {
  gpu.endComputePassEncoder();
  if (gpu.commandEncoder) gpu.submitQueue();
}

/** The open command encoder, outside any compute pass (for copies, or a pass of one's own). */
export function encoderOf(gpu: WebGpuInternals): Encoder {
  gpu.ensureCommandEncoderReady();
  gpu.endComputePassEncoder();
  return gpu.commandEncoder!;
}

/**
 * Makes `v` the only holder of its buffer, so that writing the buffer changes nothing else. A
 * variable shares its buffer with the tensor it was last assigned (set weights, say) while
 * that tensor lives; then it gets a copy of its own, once.
 */
export function ownBuffer(gpu: WebGpuInternals, v: tf.Variable): Buf {
  if ((gpu.tensorMap.get(v.dataId)?.refCount ?? 0) > 1) {
    const copy = tf.add(v, 0);
    v.assign(copy);
    copy.dispose();
  }
  return bufferOf(gpu, v);
}

/**
 * `v.assign(value)` by copying `value` into `v`'s own buffer, so that the variable keeps its
 * buffer from step to step (which a replayed step relies on). Same shape and dtype.
 */
export function assignInPlace(gpu: WebGpuInternals, v: tf.Variable, value: tf.Tensor): void {
  if (value.size !== v.size || value.dtype !== v.dtype) throw new Error(`assignInPlace: ${value.dtype}[${value.shape.join(', ')}] into ${v.dtype}[${v.shape.join(', ')}]`);
  const dst = ownBuffer(gpu, v);
  const src = bufferOf(gpu, value);
  encoderOf(gpu).copyBufferToBuffer(src, 0, dst, 0, v.size * 4);
  gpu.commandQueueOwnedIds.add(value.dataId);
  gpu.commandQueueOwnedIds.add(v.dataId);
  wroteOnGpu(gpu, v);
}

/** Forgets a copy of `t`'s values kept on the CPU by an earlier read, once its buffer was written. */
export function wroteOnGpu(gpu: WebGpuInternals, t: tf.Tensor): void {
  const d = gpu.tensorMap.get(t.dataId);
  if (d && d.resource) d.values = null;
}
