/**
 * Phase 4 of a round, aggregate and checkpoint. Takes the round's weighted sum (plaintext
 * updates were folded in as they arrived; secure groups' unmasked sums are added here) and the
 * job's strategy; gives the next global parameters, or nothing when they are not finite
 * (training diverged: the last good model and the strategy's state from before are kept). Then
 * the checkpoint: the parameters and the strategy's state go to a content-addressed file first,
 * and the round that names it is recorded after, so a crash between the two leaves an
 * unreferenced file and the round runs again after the restart.
 */
import type { Strategy, WeightedSum } from '../aggregation/index.js';
import type { CoordinatorStore, NodeRecord } from '../store/index.js';

/** The next global model and how to take the strategy back to before it. */
export interface Aggregated {
  next: Float32Array;
  /** Restores the strategy's state from before this aggregate (the round was not kept). */
  undo: () => void;
}

/**
 * The round's weighted sum (every plaintext update and secure group's sum folded in as it
 * came) into the next global parameters; null when they are not finite.
 */
export function aggregateRound(strategy: Strategy, global: Float32Array, aggregate: WeightedSum): Aggregated | null {
  const before = strategy.state();
  const undo = () => strategy.restore(before);
  const next = strategy.aggregateTrain(global, aggregate);
  if (next.every(Number.isFinite)) return { next, undo };
  // FedAdam's moments would carry the NaNs on: the state goes back too.
  undo();
  return null;
}

/** What a completed round leaves in the store. */
export interface RoundCheckpoint<R, G> {
  jobId: string;
  round: number;
  record: R;
  groups: G;
  params: Float32Array;
  strategy: Strategy;
  /** The nodes' records as the round left them, kept in the same transaction as the round. */
  nodes?: readonly NodeRecord[];
}

/** Writes the checkpoint file, then the round that names it; returns the checkpoint's digest. */
export function checkpointRound<R, G>(store: CoordinatorStore, c: RoundCheckpoint<R, G>): string {
  const digest = store.writeCheckpoint({ params: c.params, strategy: c.strategy.state() });
  store.saveRound(c.jobId, c.round, c.record, c.groups, digest, c.nodes);
  return digest;
}
