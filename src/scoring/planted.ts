/**
 * A planted federation for measuring contribution scoring, on real local training in one
 * process: 20 trainers, of which 4 free-ride (2 send zeros, 2 random updates of an honest
 * update's norm) and 3 train on a dataset node whose labels are shuffled. Each round the cohort
 * is drawn into groups of 5 (never two groups one member apart within the history's window);
 * only each group's mean update is scored: its first-order validation-loss decrease, -grad . mean,
 * which is additive over members, in the round's scale (first-order.ts). All 20 updates are
 * averaged into the global model, as a coordinator that has not yet learnt who is bad would.
 * Used by src/scoring/planted.test.ts and bench/scoring.ts.
 */
import { buildModel } from '../model/spec.js';
import { getFlatParams, setFlatParams } from '../model/params.js';
import { lossGradient, trainLocal, type Dataset } from '../model/train.js';
import { getTask } from '../tasks/index.js';
import { Random } from '../util/random.js';
import { ContributionEstimator } from './contribution.js';
import { firstOrderScores } from './first-order.js';
import { GroupHistory } from '../rounds/secure-aggregation.js';
import { spearman } from './spearman.js';

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

/**
 * The planted quality of each kind: honest trainers help, free-riders add nothing, and trainers
 * on shuffled labels pull the model away from the task (their first-order contribution is
 * negative). The ranking the estimate is held to.
 */
export const plantedQuality: Record<PlantedKind, number> = { honest: 1, zero: 0, random: 0, shuffled: -1 };

/** One draw of groups over the whole run: its own group history and estimators. */
export interface PlantedDraw {
  seed: string;
  trainers: ContributionEstimator;
  datasets: ContributionEstimator;
  /** The same groups, each round's scores divided by their own spread instead (the baseline). */
  bySpread: ContributionEstimator;
}

/** Options of {@link simulatePlanted}. */
export interface PlantedOptions {
  rounds: number;
  /**
   * Independent draws of the groups (default 1). Every group has 5 members and every update is
   * averaged in, so the global model's path does not depend on the draw: one training run
   * serves them all, and each draw sees only its own groups' means.
   */
  draws?: number;
  /**
   * Called after each round with every draw and, as a ceiling no coordinator can reach, an
   * estimator that saw each update alone (each round's 20 first-order scores, same scaling).
   */
  onRound?: (round: number, draws: readonly PlantedDraw[], individual: ContributionEstimator) => void;
}

/** Runs the planted federation; returns each draw's estimators and who is who. */
export async function simulatePlanted(options: PlantedOptions) {
  const rng = new Random('planted');
  const ids = Array.from({ length: 20 }, (_, i) => `t${String(i).padStart(2, '0')}`);
  const kind = (i: number): PlantedKind => (i < 3 ? 'shuffled' : i < 5 ? 'zero' : i < 7 ? 'random' : 'honest');
  // Shuffled-label trainers read the bad node; everyone else one shard of each honest node.
  const sources = (i: number): [string, number][] => (i < 3 ? [['bad', i], ['bad', i + 3]] : [['h0', i % 8], ['h1', (i + 3) % 8]]);
  const data = ids.map((_, i) => dataOf(sources(i), kind(i) === 'shuffled'));
  const v = task.generateValidation('planted-validation', 210);
  const val: Dataset = { count: v.count, features: task.features(v.x, v.count), labels: v.y };
  const model = buildModel({ family: 'mlp', hidden: [32] }, task.inputShape, task.head, 3);
  const evalModel = buildModel({ family: 'mlp', hidden: [32] }, task.inputShape, task.head, 3);
  let global = await getFlatParams(model);
  const draws = Array.from({ length: options.draws ?? 1 }, (_, d) => ({
    seed: `groups-${d}`, rng: new Random(`groups-${d}`), history: new GroupHistory(),
    trainers: new ContributionEstimator(), datasets: new ContributionEstimator(), bySpread: new ContributionEstimator(),
  }));
  const individual = new ContributionEstimator();
  const train = { epochs: 3, batchSize: 16, learningRate: 0.001, optimizer: 'adam', head: task.head } as const;
  for (let round = 0; round < options.rounds; round++) {
    const deltas = new Map<string, Float32Array>();
    for (let i = 0; i < 20; i++) {
      if (kind(i) !== 'honest' && kind(i) !== 'shuffled') continue;
      setFlatParams(model, global);
      await trainLocal(model, data[i]!, { ...train, seed: round * 100 + i });
      const local = await getFlatParams(model);
      deltas.set(ids[i]!, local.map((w, k) => w - global[k]!));
    }
    // Random free-riders send noise of a typical honest update's size, so they are not trivially huge.
    const norm = Math.sqrt(deltas.get(ids[7]!)!.reduce((s, d) => s + d * d, 0));
    for (let i = 0; i < 20; i++) {
      if (kind(i) === 'zero') deltas.set(ids[i]!, new Float32Array(global.length));
      if (kind(i) !== 'random') continue;
      const r = Float32Array.from({ length: global.length }, () => rng.normal());
      const rn = Math.sqrt(r.reduce((s, d) => s + d * d, 0));
      deltas.set(ids[i]!, r.map((d) => (d * norm) / rn));
    }
    setFlatParams(evalModel, global);
    const grad = await lossGradient(evalModel, val, task.head);
    for (const draw of draws) {
      const groups = draw.history.draw(ids, 5, draw.rng);
      if (groups.length !== 4) throw new Error('could not draw groups that avoid differencing');
      draw.history.add(groups);
      const means = groups.map((g) => {
        const mean = new Float32Array(global.length);
        for (const id of g) deltas.get(id)!.forEach((d, k) => (mean[k]! += d / g.length));
        return mean;
      });
      const { scores, scale } = firstOrderScores(grad, means);
      groups.forEach((g, j) => {
        draw.trainers.observe({ members: g.map((id) => ({ id, share: 1 })), score: scores[j]!, scale, round: String(round) });
        draw.bySpread.observe({ members: g.map((id) => ({ id, share: 1 })), score: scores[j]!, round: String(round) });
        // The coordinator knows which node's shards fed each member.
        const bySource = new Map<string, number>();
        for (const id of g) for (const [node] of sources(ids.indexOf(id))) bySource.set(node, (bySource.get(node) ?? 0) + 1);
        draw.datasets.observe({ members: [...bySource].map(([id, share]) => ({ id, share })), score: scores[j]!, scale, round: String(round) });
      });
    }
    const alone = firstOrderScores(grad, [...deltas.values()]);
    [...deltas.keys()].forEach((id, j) => individual.observe({ members: [{ id, share: 1 }], score: alone.scores[j]!, scale: alone.scale, round: String(round) }));
    // The mean of the group means (equal groups) is the mean of all 20 updates, whatever the draw.
    const sum = new Float32Array(global.length);
    for (const d of deltas.values()) d.forEach((x, k) => (sum[k]! += x / deltas.size));
    global = global.map((w, k) => w + sum[k]!);
    options.onRound?.(round + 1, draws, individual);
  }
  return { ids, kind: (id: string) => kind(ids.indexOf(id)), draws: draws as PlantedDraw[] };
}

/** How one draw's estimate stands against the planted qualities. */
export function judgePlanted(ids: readonly string[], kind: (id: string) => PlantedKind, trainers: ContributionEstimator, datasets: ContributionEstimator) {
  const q = trainers.estimate();
  const rho = spearman(ids.map((id) => plantedQuality[kind(id)]), ids.map((id) => q.get(id) ?? 0));
  const bottom = new Set([...q].sort((a, b) => a[1] - b[1]).slice(0, 7).map(([id]) => id));
  const badAreBottom = ids.filter((id) => kind(id) !== 'honest').every((id) => bottom.has(id));
  const d = datasets.estimate();
  const datasetBelow = (d.get('bad') ?? 0) < Math.min(d.get('h0') ?? 0, d.get('h1') ?? 0);
  return { rho, badAreBottom, datasetBelow };
}
