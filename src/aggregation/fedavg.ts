/**
 * FedAvg (McMahan et al. 2017, "Communication-Efficient Learning of Deep Networks from
 * Decentralized Data"): the next model is the sample-weighted mean of the local models,
 * i.e. `global + serverLr * sum(n_i * delta_i) / sum(n_i)`.
 */
import type { Strategy, StrategyState } from './strategy.js';
import type { WeightedSum } from './weighted-sum.js';

/** Options of {@link createFedAvg}. */
export interface FedAvgOptions {
  /** Server learning rate applied to the mean update; 1 is plain FedAvg. */
  serverLearningRate?: number;
}

/** Creates a FedAvg strategy. */
export function createFedAvg(options: FedAvgOptions = {}): Strategy {
  const lr = options.serverLearningRate ?? 1;
  return {
    name: 'fedavg',
    aggregateTrain(global: Float32Array, aggregate: WeightedSum): Float32Array {
      const next = new Float32Array(global);
      if (aggregate.totalWeight === 0) return next;
      const k = lr / aggregate.totalWeight;
      const s = aggregate.sum;
      for (let i = 0; i < next.length; i++) next[i]! += k * s[i]!;
      return next;
    },
    state(): StrategyState {
      return { serverLearningRate: lr };
    },
    restore(): void {
      // FedAvg keeps nothing between rounds.
    },
  };
}
