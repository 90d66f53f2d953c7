/**
 * How fast contribution scoring learns: the planted federation (src/scoring/planted.ts), one
 * training run scored under several independent draws of the groups. Per round: the Spearman
 * correlation of the estimated trainer ranking with the planted one (honest > free-riders >
 * shuffled labels), in how many draws the 7 planted bad trainers are the bottom 7, and in how
 * many the shuffled dataset node ranks below both honest ones. Against it, in the same run: the
 * baseline (the same groups, each round's scores divided by their own spread, as before
 * first-order.ts) and the ceiling (an estimator that saw every update alone, which secure
 * aggregation forbids).
 */
import { selectBackend } from '../src/model/index.js';
import { judgePlanted, simulatePlanted } from '../test/fixtures/planted.js';
import type { ContributionEstimator } from '../src/scoring/index.js';

export async function benchScoring(rounds: number, draws: number): Promise<void> {
  await selectBackend('wasm');
  console.log(`\n== contribution scoring, planted federation (20 trainers: 13 honest, 4 free-riders, 3 on shuffled labels), groups of 5, ${draws} draws of the groups`);
  console.log('         groups, round scale            baseline: own spread   ceiling: each update alone');
  console.log('  round  spearman min/median  bad 7 last  dataset  spearman min/median  bad 7 last  spearman  bad 7 last');
  const ids = Array.from({ length: 20 }, (_, i) => `t${String(i).padStart(2, '0')}`);
  const kind = (id: string) => { const i = ids.indexOf(id); return i < 3 ? 'shuffled' as const : i < 5 ? 'zero' as const : i < 7 ? 'random' as const : 'honest' as const; };
  const started = performance.now();
  await simulatePlanted({
    rounds, draws,
    onRound: (round, all, individual) => {
      if (round % 5 !== 0 && round > 10) return;
      const judge = (est: (d: (typeof all)[number]) => ContributionEstimator) => {
        const judged = all.map((d) => judgePlanted(ids, kind, est(d), d.datasets));
        const rhos = judged.map((j) => j.rho).sort((a, b) => a - b);
        return {
          rho: `${rhos[0]!.toFixed(3)}/${rhos[rhos.length >> 1]!.toFixed(3)}`.padStart(19),
          bottom: `${judged.filter((j) => j.badAreBottom).length}/${draws}`.padStart(10),
          below: `${judged.filter((j) => j.datasetBelow).length}/${draws}`.padStart(7),
        };
      };
      const ours = judge((d) => d.trainers), base = judge((d) => d.bySpread);
      const ceiling = judgePlanted(ids, kind, individual, all[0]!.datasets);
      console.log(`  ${String(round).padStart(5)}  ${ours.rho}  ${ours.bottom}  ${ours.below}  ${base.rho}  ${base.bottom}  ${ceiling.rho.toFixed(3).padStart(8)}  ${(ceiling.badAreBottom ? 'yes' : 'no').padStart(10)}`);
    },
  });
  console.log(`  (${rounds} rounds of real local training, ${draws} draws, in ${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
