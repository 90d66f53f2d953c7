/**
 * A planted federation for measuring contribution scoring, on real local training in one
 * process: 20 trainers, of which 4 free-ride (2 send zeros, 2 random updates of an honest
 * update's norm) and 3 train on a dataset node whose labels are shuffled. Each round the cohort
 * is drawn into groups of 5 (never two evaluated groups differing by one member); only each
 * group's mean update is scored: its first-order validation-loss decrease, -grad . mean, which
 * is additive over members. Used by src/scoring/planted.test.ts and bench/scoring.ts.
 */
import { buildModel } from '../model/spec.js';
import { getFlatParams, setFlatParams } from '../model/params.js';
import { lossGradient, trainLocal, type Dataset } from '../model/train.js';
import { getTask } from '../tasks/index.js';
import { Random } from '../util/random.js';
import { ContributionEstimator, differByOne } from './contribution.js';
import { formGroupsAvoiding } from '../rounds/secure-aggregation.js';

const task = getTask('exercise');

/** Near-IID shards (alpha 100): the planted qualities say every honest trainer is as good. */
function dataOf(sources: [string, number][], shuffleLabels: boolean): Dataset {
  const parts = sources.map(([seed, i]) => task.generateShard({ seed, shards: 8, samplesPerShard: 48, alpha: 100, shardConcentration: 200 }, i));
  const count = parts.reduce((n, p) => n + p.count, 0);
  const x = new Float32Array(count * parts[0]!.x.length / parts[0]!.count);
  const y = new Uint8Array(count);
  let off = 0;
  for (const p of parts) {
    x.set(p.x, off * (p.x.length / p.count));
    y.set(p.y, off);
    off += p.count;
  }
  if (shuffleLabels) new Random(`shuffle-${sources[0]![0]}-${sources[0]![1]}`).shuffle(Array.from(y)).forEach((l, i) => (y[i] = l));
  return { count, features: task.features(x, count), labels: y };
}


/** What kind of trainer each planted id is. */
export type PlantedKind = 'honest' | 'shuffled' | 'zero' | 'random';

/** Options of {@link simulatePlanted}. */
export interface PlantedOptions {
  rounds: number;
  onRound?: (round: number, trainers: ContributionEstimator, datasets: ContributionEstimator) => void;
}

/** Runs the planted federation; returns both estimators and who is who. */
export async function simulatePlanted(options: PlantedOptions) {
  const rng = new Random('planted');
  const ids = Array.from({ length: 20 }, (_, i) => `t${String(i).padStart(2, '0')}`);
  const kind = (i: number): PlantedKind => (i < 3 ? 'shuffled' : i < 5 ? 'zero' : i < 7 ? 'random' : 'honest');
  // Shuffled-label trainers read the bad node; everyone else one shard of each honest node.
  const sources = (i: number): [string, number][] => (i < 3 ? [['bad', i], ['bad', i + 3]] : [['h0', i % 8], ['h1', (i + 3) % 8]]);
  const data = ids.map((_, i) => dataOf(sources(i), kind(i) === 'shuffled'));
  const v = task.generateValidation('planted-validation', 210);
  const val: Dataset = { count: v.count, features: task.features(v.x, v.count), labels: v.y };
  const model = buildModel({ ...task.defaultModel, hidden: [32], dropout: 0 }, task.inputShape, 3);
  const evalModel = buildModel({ ...task.defaultModel, hidden: [32], dropout: 0 }, task.inputShape, 3);
  let global = await getFlatParams(model);
  const trainers = new ContributionEstimator();
  const datasets = new ContributionEstimator();
  const evaluated: string[][] = [];
  for (let round = 0; round < options.rounds; round++) {
    const deltas = new Map<string, Float32Array>();
    for (let i = 7; i < 20; i++) {
      setFlatParams(model, global);
      await trainLocal(model, data[i]!, { epochs: 1, batchSize: 16, learningRate: 0.003, optimizer: 'adam', numClasses: 7, seed: round * 100 + i });
      const local = await getFlatParams(model);
      deltas.set(ids[i]!, local.map((w, k) => w - global[k]!));
    }
    // Typical honest update size, so random free-riders are not trivially huge.
    const norm = Math.sqrt([...deltas.values()][0]!.reduce((s, d) => s + d * d, 0));
    for (let i = 0; i < 7; i++) {
      const id = ids[i]!;
      if (kind(i) === 'shuffled') {
        setFlatParams(model, global);
        await trainLocal(model, data[i]!, { epochs: 1, batchSize: 16, learningRate: 0.003, optimizer: 'adam', numClasses: 7, seed: round * 100 + i });
        const local = await getFlatParams(model);
        deltas.set(id, local.map((w, k) => w - global[k]!));
      } else if (kind(i) === 'zero') {
        deltas.set(id, new Float32Array(global.length));
      } else {
        const r = Float32Array.from({ length: global.length }, () => rng.normal());
        const rn = Math.sqrt(r.reduce((s, d) => s + d * d, 0));
        deltas.set(id, r.map((d) => (d * norm) / rn));
      }
    }
    const groups = formGroupsAvoiding(ids, 5, rng, evaluated);
    if (groups.length !== 4) throw new Error('could not draw groups that avoid differencing');
    setFlatParams(evalModel, global);
    const grad = await lossGradient(evalModel, val, 7);
    const sum = new Float32Array(global.length);
    for (const g of groups) {
      for (const e of evaluated) if (differByOne(g, e)) throw new Error('two evaluated groups differ by one member');
      const mean = new Float32Array(global.length);
      for (const id of g) deltas.get(id)!.forEach((d, k) => (mean[k]! += d / g.length));
      // First-order validation-loss decrease of the group's mean update (additive over members).
      let score = 0;
      for (let k = 0; k < mean.length; k++) score -= grad[k]! * mean[k]!;
      trainers.observe({ members: g.map((id) => ({ id, share: 1 })), score, round: String(round) });
      // The coordinator knows which node's shards fed each member.
      const bySource = new Map<string, number>();
      for (const id of g) for (const [node] of sources(ids.indexOf(id))) bySource.set(node, (bySource.get(node) ?? 0) + 1);
      datasets.observe({ members: [...bySource].map(([id, share]) => ({ id, share })), score, round: String(round) });
      evaluated.push(g);
      mean.forEach((m, k) => (sum[k]! += m / groups.length));
    }
    global = global.map((w, k) => w + sum[k]!);
    options.onRound?.(round + 1, trainers, datasets);
  }
  return { ids, kind: (id: string) => kind(ids.indexOf(id)), trainers, datasets };
}
