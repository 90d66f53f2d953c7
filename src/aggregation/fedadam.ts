/**
 * FedAdam (Reddi et al. 2021, "Adaptive Federated Optimization", Algorithm 2): the weighted-mean
 * update is a pseudo-gradient for Adam on the server:
 *   m = b1 m + (1 - b1) d;  v = b2 v + (1 - b2) d^2;  x = x + lr * m / (sqrt(v) + tau).
 * As in the paper there is no bias correction; `tau` controls adaptivity.
 */
import type { Strategy, StrategyState } from './strategy.js';
import type { WeightedSum } from './weighted-sum.js';

/** Options of {@link createFedAdam}. */
export interface FedAdamOptions {
  /** Server learning rate (eta); default 0.01. */
  serverLearningRate?: number;
  beta1?: number;
  beta2?: number;
  /** Adaptivity (tau); default 1e-3. */
  tau?: number;
}

/** Creates a FedAdam strategy; its moments live with it across rounds. */
export function createFedAdam(options: FedAdamOptions = {}): Strategy {
  const lr = options.serverLearningRate ?? 0.01;
  const b1 = options.beta1 ?? 0.9;
  const b2 = options.beta2 ?? 0.99;
  const tau = options.tau ?? 1e-3;
  let m: Float32Array | null = null;
  let v: Float32Array | null = null;
  let rounds = 0;
  return {
    name: 'fedadam',
    aggregateTrain(global: Float32Array, aggregate: WeightedSum): Float32Array {
      const next = new Float32Array(global);
      if (aggregate.totalWeight === 0) return next;
      if (!m || m.length !== global.length) {
        m = new Float32Array(global.length);
        v = new Float32Array(global.length);
      }
      const mm = m, vv = v!;
      const k = 1 / aggregate.totalWeight;
      const s = aggregate.sum;
      for (let i = 0; i < next.length; i++) {
        const d = s[i]! * k;
        const mi = b1 * mm[i]! + (1 - b1) * d;
        const vi = b2 * vv[i]! + (1 - b2) * d * d;
        mm[i] = mi;
        vv[i] = vi;
        next[i]! += (lr * mi) / (Math.sqrt(vi) + tau);
      }
      rounds++;
      return next;
    },
    state(): StrategyState {
      const out: StrategyState = { serverLearningRate: lr, beta1: b1, beta2: b2, tau, rounds };
      if (m && v) {
        out.m = new Float32Array(m);
        out.v = new Float32Array(v);
      }
      return out;
    },
    restore(state: StrategyState): void {
      rounds = typeof state.rounds === 'number' ? state.rounds : 0;
      m = state.m instanceof Float32Array ? new Float32Array(state.m) : null;
      v = state.v instanceof Float32Array ? new Float32Array(state.v) : null;
    },
  };
}
