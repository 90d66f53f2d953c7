/**
 * The coordinator's durable state: jobs, rounds, node records and weights in SQLite, and model
 * checkpoints as content-addressed files.
 */
export { CoordinatorStore, type NodeRecord, type StoredWeights } from './coordinator-store.js';
