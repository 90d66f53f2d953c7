/**
 * wasm's BatchMatMul with a transposed operand runs 4 to 100 times slower than transposing the
 * operand first and multiplying plainly (measured here; the gradients of every matMul ask for
 * transposed operands). This wraps the stock kernel: transposes made explicit, then the stock
 * product with none.
 */
import * as tf from '@tensorflow/tfjs';

const wrapped = new Set<string>();

/** Wraps `backendName`'s BatchMatMul (idempotent). */
export function registerTransposeFirstMatMul(backendName: 'wasm'): void {
  if (wrapped.has(backendName)) return;
  const stock = tf.getKernel('BatchMatMul', backendName);
  const transpose = tf.getKernel('Transpose', backendName);
  if (!stock || !transpose) return;
  wrapped.add(backendName);
  tf.unregisterKernel('BatchMatMul', backendName);
  tf.registerKernel({
    kernelName: 'BatchMatMul',
    backendName,
    // The stock kernel binds its wasm function when the backend starts.
    setupFunc: stock.setupFunc,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
      const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
      if (!transposeA && !transposeB) return stock.kernelFunc({ inputs, backend, attrs });
      const swapLast = (t: tf.TensorInfo) => transpose.kernelFunc({
        inputs: { x: t }, backend, attrs: { perm: [...t.shape.keys()].map((i, _, all) => (i < all.length - 2 ? i : 2 * all.length - 3 - i)) },
      }) as tf.TensorInfo;
      const at = transposeA ? swapLast(a) : a, bt = transposeB ? swapLast(b) : b;
      const out = stock.kernelFunc({ inputs: { a: at, b: bt }, backend, attrs: { ...attrs, transposeA: false, transposeB: false } }) as tf.TensorInfo;
      for (const t of [at, bt]) if (t !== a && t !== b) (backend as tf.KernelBackend).disposeData(t.dataId);
      return out;
    },
  });
}
