/**
 * Differential privacy: each trainer's clipping and noise share under secure aggregation, and
 * the coordinator's RDP accountant for what the released sums spent.
 */
export { epsilonOf, ORDERS, rdpSampledGaussian, RdpAccountant, type PrivacyStep } from './accountant.js';
export { clipL2, privatize, standardNormals, type NoiseShare } from './noise.js';
