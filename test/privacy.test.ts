/**
 * Differential privacy end to end: trainers clip their updates and add their shares of the
 * noise under secure aggregation, the coordinator accounts what each released sum spent, ends
 * the job at its epsilon budget, and the model card states epsilon at delta.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { Harness } from './helpers.js';
import { RdpAccountant } from '../src/privacy/index.js';

let h: Harness;
afterEach(async () => h.close());

describe('differential privacy', () => {
  it('ends the job when another round would pass the epsilon budget, with each round\'s spend recorded and epsilon in the model card', async () => {
    h = new Harness();
    // sigma 2 and no sampling: epsilon at delta 1e-5 is 2.17, 3.19, 4.01, 4.73 after 1 to 4 rounds; the budget 4.5 allows 3.
    const c = await h.coordinator(['--rounds', '10', '--cohort', '5', '--min-trainers', '5', '--min-group-size', '5', '--hidden', '16',
      '--local-epochs', '1', '--validation-samples', '70', '--clip-norm', '1', '--dp-noise', '2', '--dp-epsilon', '4.5', '--exit-when-done']);
    await h.dataset(c.address, 'ds-a', ['--shards', '10', '--samples-per-shard', '32']);
    for (let i = 0; i < 5; i++) await h.trainer(c.address, `t${i}`);
    expect(await c.done).toBe('DONE');
    const history = c.job.history;
    expect(history).toHaveLength(3);
    const expected = new RdpAccountant();
    history.forEach((r, i) => {
      // Every member of the one group sent its masked input: the sum carried the whole noise.
      expect(r.dpNoiseMultiplier).toBe(2);
      expected.compose({ q: 1, noiseMultiplier: 2 });
      expect(r.epsilon).toBeCloseTo(expected.epsilon(1e-5), 9);
      expect(h.progress.some((l) => l.startsWith(`round ${i + 1}/10 done`) && l.includes(`epsilon ${r.epsilon!.toFixed(2)} at delta 0.00001`))).toBe(true);
    });
    expect(h.progress.some((l) => /privacy budget reached after 3 rounds: epsilon 4\.01 at delta 0\.00001 \(another round would make it 4\.7\d, the budget is 4\.5\)/.test(l))).toBe(true);
    const card = JSON.parse(fs.readFileSync(path.join(h.dir, 'out', 'model', 'model-card.json'), 'utf8')) as { training: { differentialPrivacy: Record<string, unknown> } };
    expect(card.training.differentialPrivacy).toMatchObject({ delta: 1e-5, noiseMultiplier: 2, clipNorm: 1, epsilonBudget: 4.5, rounds: 3 });
    expect(card.training.differentialPrivacy.epsilon as number).toBeCloseTo(history[2]!.epsilon!, 9);
  }, 180_000);
});
