/**
 * Aggregation: strategies that turn a round's updates into the next global model (one file per
 * algorithm) and the streaming weighted sum they consume.
 */
import { InvalidFieldError } from '../errors.js';
import { createFedAdam, type FedAdamOptions } from './fedadam.js';
import { createFedAvg, type FedAvgOptions } from './fedavg.js';
import type { Strategy } from './strategy.js';

export type { Strategy, StrategyState } from './strategy.js';
export { WeightedSum } from './weighted-sum.js';
export { createFedAvg, createFedAdam };

/** Strategy names accepted in a job. */
export const STRATEGIES = ['fedavg', 'fedadam'] as const;

/** Creates the strategy `name` with its options. */
export function createStrategy(name: string, options: FedAvgOptions & FedAdamOptions = {}): Strategy {
  switch (name) {
    case 'fedavg':
      return createFedAvg(options);
    case 'fedadam':
      return createFedAdam(options);
    default:
      throw new InvalidFieldError('strategy', STRATEGIES.join(' or '), JSON.stringify(name));
  }
}
