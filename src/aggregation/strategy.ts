/**
 * The strategy interface (after Flower's `Strategy`): a strategy decides how each round's
 * weighted-mean update becomes the next global model. One file per algorithm beside this one.
 */
import type { WeightedSum } from './weighted-sum.js';

/** Server-side state a strategy keeps between rounds (for checkpoints). */
export type StrategyState = Record<string, Float32Array | number>;

/** A federated optimisation strategy. */
export interface Strategy {
  /** Algorithm name, e.g. `fedavg`. */
  readonly name: string;
  /**
   * Folds one round's aggregate (sum of `n_i * delta_i` and of `n_i`, where
   * `delta_i = local_i - global`) into `global` and returns the next global parameters.
   * Must not modify `global`.
   */
  aggregateTrain(global: Float32Array, aggregate: WeightedSum): Float32Array;
  /** State to checkpoint (copies). */
  state(): StrategyState;
  /** Takes back state that {@link state} returned (after a restart). */
  restore(state: StrategyState): void;
}
