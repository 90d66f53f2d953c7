/**
 * How fast contribution scoring learns: the planted federation (src/scoring/planted.ts), with
 * the Spearman correlation of the estimated trainer ranking against the planted one, whether
 * the 7 planted bad trainers are the bottom 7, and the shuffled dataset node's rank, per round.
 */
import { selectBackend } from '../src/model/backend.js';
import { simulatePlanted } from '../src/scoring/planted.js';
import { spearman } from '../src/scoring/spearman.js';

export async function benchScoring(rounds: number): Promise<void> {
  await selectBackend('wasm');
  console.log(`\n== contribution scoring, planted federation (20 trainers: 13 honest, 4 free-riders, 3 on shuffled labels), groups of 5`);
  console.log('  round  spearman  bad 7 = bottom 7  shuffled dataset node below both honest ones');
  // The simulation's trainers: t00-t02 shuffled labels, t03-t06 free-riders, the rest honest.
  const ids = Array.from({ length: 20 }, (_, i) => `t${String(i).padStart(2, '0')}`);
  const honest = (id: string) => ids.indexOf(id) >= 7;
  const started = performance.now();
  await simulatePlanted({
    rounds,
    onRound: (round, trainers, datasets) => {
      const q = trainers.estimate();
      const rho = spearman(ids.map((id) => (honest(id) ? 1 : 0)), ids.map((id) => q.get(id) ?? 0));
      const bottom = new Set([...q].sort((a, b) => a[1] - b[1]).slice(0, 7).map(([id]) => id));
      const ok = ids.filter((id) => !honest(id)).every((id) => bottom.has(id));
      const d = datasets.estimate();
      const dsOk = (d.get('bad') ?? 0) < Math.min(d.get('h0') ?? 0, d.get('h1') ?? 0);
      console.log(`  ${String(round).padStart(5)}  ${rho.toFixed(3).padStart(8)}  ${(ok ? 'yes' : 'no').padStart(16)}  ${dsOk ? 'yes' : 'no'}`);
    },
  });
  console.log(`  (${rounds} rounds of real local training in ${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
