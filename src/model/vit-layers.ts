/**
 * The Layers a small ViT needs that TF.js Layers lacks or makes slow: a learnt position
 * embedding added to the patch tokens, multi-head self-attention, and a layer norm over the
 * last axis (tfjs-layers' own tiles gamma and beta to the input's shape, and Tile's gradient is
 * a loop of one slice and one add per tile: 1,024 of each per parameter for 16 images of 64
 * tokens, most of a ViT step on wasm). Registered for serialisation, so a ViT's
 * topology JSON rebuilds on every trainer (both sides run this module; no submitted code).
 * Attention transposes K explicitly before its matMul: a transposed operand is many times
 * slower on wasm.
 */
import * as tf from '@tensorflow/tfjs';

type Kwargs = Record<string, unknown>;

/** A fused layer norm (x, gamma, beta, epsilon), or null where it does not run. */
type TokenNormKernel = (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, epsilon: number) => tf.Tensor | null;
let tokenNormKernel: TokenNormKernel | null = null;

/**
 * Gives TokenNorm a fused kernel (layer-norm.ts, on webgpu). This file imports nothing of the
 * project, so it also builds alone into the script that lets stock TF.js load a ViT
 * (portable-layers.ts).
 */
export function useTokenNormKernel(kernel: TokenNormKernel | null): void {
  tokenNormKernel = kernel;
}

/** x + P, P a learnt [tokens, dim] table. */
export class PositionEmbedding extends tf.layers.Layer {
  static className = 'AqPositionEmbedding';
  private table!: tf.LayerVariable;
  private readonly seed: number;

  constructor(args: { seed?: number; name?: string } = {}) {
    super(args);
    this.seed = args.seed ?? 1;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const [, tokens, dim] = inputShape as number[];
    this.table = this.addWeight('table', [tokens!, dim!], 'float32', tf.initializers.truncatedNormal({ stddev: 0.02, seed: this.seed }));
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => tf.add(Array.isArray(inputs) ? inputs[0]! : inputs, this.table.read()));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), seed: this.seed };
  }
}

/** Multi-head self-attention over [batch, tokens, dim]. */
export class SelfAttention extends tf.layers.Layer {
  static className = 'AqSelfAttention';
  private readonly heads: number;
  private readonly seed: number;
  private w: tf.LayerVariable[] = [];
  private b: tf.LayerVariable[] = [];

  constructor(args: { heads: number; seed?: number; name?: string }) {
    super(args);
    this.heads = args.heads;
    this.seed = args.seed ?? 1;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const dim = (inputShape as number[])[2]!;
    if (dim % this.heads !== 0) throw new RangeError(`self-attention: dim ${dim} is not a multiple of heads ${this.heads}`);
    this.w = ['q', 'k', 'v', 'o'].map((n, i) => this.addWeight(`w${n}`, [dim, dim], 'float32', tf.initializers.glorotUniform({ seed: this.seed + i })));
    this.b = ['q', 'k', 'v', 'o'].map((n) => this.addWeight(`b${n}`, [dim], 'float32', tf.initializers.zeros()));
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs?: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = (Array.isArray(inputs) ? inputs[0]! : inputs) as tf.Tensor3D;
      const [batch, tokens, dim] = x.shape;
      const h = this.heads, d = dim / h;
      const flat = x.reshape([batch * tokens, dim]);
      const proj = (i: number) => tf.add(tf.matMul(flat, this.w[i]!.read() as tf.Tensor2D), this.b[i]!.read());
      const split = (t: tf.Tensor) => t.reshape([batch, tokens, h, d]).transpose([0, 2, 1, 3]).reshape<tf.Tensor3D>([batch * h, tokens, d]);
      const q = split(proj(0)), k = split(proj(1)), v = split(proj(2));
      const att = tf.softmax(tf.mul(tf.matMul(q, k.transpose([0, 2, 1])), 1 / Math.sqrt(d)));
      const o = tf.matMul(att, v).reshape([batch, h, tokens, d]).transpose([0, 2, 1, 3]).reshape<tf.Tensor2D>([batch * tokens, dim]);
      return tf.add(tf.matMul(o, this.w[3]!.read() as tf.Tensor2D), this.b[3]!.read()).reshape([batch, tokens, dim]);
    });
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return inputShape as tf.Shape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), heads: this.heads, seed: this.seed };
  }
}

/**
 * (x - mean) / sqrt(var + eps) * gamma + beta over the last axis, by broadcasting; on webgpu as
 * one op (layer-norm.ts).
 */
export class TokenNorm extends tf.layers.Layer {
  static className = 'AqTokenNorm';
  private gamma!: tf.LayerVariable;
  private beta!: tf.LayerVariable;

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const dim = (inputShape as number[]).at(-1)!;
    this.gamma = this.addWeight('gamma', [dim], 'float32', tf.initializers.ones());
    this.beta = this.addWeight('beta', [dim], 'float32', tf.initializers.zeros());
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0]! : inputs;
      const fused = tokenNormKernel?.(x, this.gamma.read(), this.beta.read(), 1e-5);
      if (fused) return fused;
      const { mean, variance } = tf.moments(x, -1, true);
      return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5))), this.gamma.read()), this.beta.read());
    });
  }
}

tf.serialization.registerClass(PositionEmbedding);
tf.serialization.registerClass(TokenNorm);
tf.serialization.registerClass(SelfAttention);
