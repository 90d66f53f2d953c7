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
 */
import * as tf from '@tensorflow/tfjs';

export class FlatAdam extends tf.Optimizer {
  static get className(): string {
    return 'AqFlatAdam';
  }

  private m: tf.Variable | null = null;
  private v: tf.Variable | null = null;
  private step = 0;
  /** The variables (in order) the moments were laid out for. */
  private layout = '';

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

  private reset(layout: string, size: number): void {
    this.m?.dispose();
    this.v?.dispose();
    this.m = tf.variable(tf.zeros([size]), false);
    this.v = tf.variable(tf.zeros([size]), false);
    this.step = 0;
    this.layout = layout;
  }

  override dispose(): void {
    this.m?.dispose();
    this.v?.dispose();
    this.m = this.v = null;
    super.dispose();
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { learningRate: this.learningRate, beta1: this.beta1, beta2: this.beta2, epsilon: this.epsilon };
  }
}
