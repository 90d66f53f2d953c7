import { describe, expect, it } from 'vitest';
import { parseJobSpec } from '../src/jobs/index.js';
import { loadCoordinatorConfig } from '../coordinator/config.js';

describe('job specs', () => {
  it('fill the defaults the coordinator\'s flags have, with the task\'s model, learning rate and metric', () => {
    const { config } = parseJobSpec('task: pose');
    const flags = loadCoordinatorConfig(['--task', 'pose'], {}).job!;
    expect(config).toMatchObject({
      task: 'pose', model: flags.model, learningRate: 0.004, rounds: flags.rounds, cohort: flags.cohort, localEpochs: flags.localEpochs,
      batchSize: flags.batchSize, strategy: 'fedavg', metric: 'pck', priority: 1, taskWeight: 3, secure: flags.secure,
    });
    expect(config.jobId).toMatch(/^job-[0-9a-f]{8}$/);
    expect(loadCoordinatorConfig(['--task', 'exercise'], {}).job!.learningRate).toBe(0.002);
    expect(parseJobSpec('task: exercise').config.learningRate).toBe(0.002);
  });

  it('read YAML and JSON alike, and keep what they name', () => {
    const yaml = parseJobSpec('id: a\ntask: exercise\nrounds: 3\nlearningRate: 0.01\nroundTimeout: 2\nstrategy: fedadam\nstrategyParams: { serverLearningRate: 0.05 }\nsecureAggregation: { enabled: false }\nmetric: loss\n');
    const json = parseJobSpec(JSON.stringify({ id: 'a', task: 'exercise', rounds: 3, learningRate: 0.01, roundTimeout: 2, strategy: 'fedadam', strategyParams: { serverLearningRate: 0.05 }, secureAggregation: { enabled: false }, metric: 'loss' }));
    expect({ ...yaml.config, validationSeed: '' }).toEqual({ ...json.config, validationSeed: '' });
    expect(yaml.config).toMatchObject({ rounds: 3, learningRate: 0.01, roundTimeoutMs: 2000, strategy: 'fedadam', serverLearningRate: 0.05, secure: null, metric: 'loss' });
  });

  it('refuse what they cannot be, naming the field', () => {
    expect(() => parseJobSpec('task: pose\nmetric: accuracy')).toThrow('job.metric: expected one of pck, mean_error, loss, got "accuracy"');
    expect(() => parseJobSpec('task: exercise\nrounds: 1.5')).toThrow('job.rounds: expected an integer, got 1.5');
    expect(() => parseJobSpec('task: exercise\nsecureAggregation: { neighbours: 3 }')).toThrow('job.secureAggregation.neighbours: expected an even number');
    expect(() => parseJobSpec('task: exercise\nmodel: { family: resnet }')).toThrow('job.model.family: expected "mlp", "cnn", "vit" or "layers", got "resnet"');
    expect(() => parseJobSpec('')).toThrow('job: expected a mapping with at least a task, got an empty document');
  });

  it('are resolved by the same rules as the coordinator\'s flags, each named its own way', () => {
    const cases: [string[], string, string, string][] = [
      [['--cohort', '2', '--min-trainers', '3'], 'cohort: 2\nminTrainers: 3', '--min-trainers: expected at most --cohort (2), got 3', 'job.minTrainers: expected at most cohort (2), got 3'],
      [['--rounds', '1.5'], 'rounds: 1.5', '--rounds: expected an integer, got 1.5', 'job.rounds: expected an integer, got 1.5'],
      [['--neighbours', '3'], 'secureAggregation: { neighbours: 3 }', '--neighbours: expected an even number (or 0 for the default), got 3', 'job.secureAggregation.neighbours: expected an even number (or 0 for the default), got 3'],
      [['--dp-noise', '1', '--clip-norm', '1', '--secure-aggregation', 'false'], 'clipNorm: 1\ndp: { noiseMultiplier: 1 }\nsecureAggregation: { enabled: false }',
        '--dp-noise: expected 0 without secure aggregation (the coordinator would see each update and its noise share); turn --secure-aggregation on, got 1',
        'job.dp.noiseMultiplier: expected 0 without secure aggregation (the coordinator would see each update and its noise share); turn secureAggregation.enabled on, got 1'],
      [['--dp-noise', '1'], 'dp: { noiseMultiplier: 1 }', '--clip-norm: expected a positive L2 bound with --dp-noise (the sensitivity the noise is scaled to), got 0',
        'job.clipNorm: expected a positive L2 bound with dp.noiseMultiplier (the sensitivity the noise is scaled to), got 0'],
      [['--dp-epsilon', '3'], 'dp: { epsilon: 3 }', '--dp-epsilon: expected 0 without --dp-noise, got 3', 'job.dp.epsilon: expected 0 without dp.noiseMultiplier, got 3'],
      [['--cohort', '4'], 'cohort: 4\nminTrainers: 2', '--cohort: expected at least --min-group-size (5) with secure aggregation on, got 4', 'job.cohort: expected at least secureAggregation.minGroupSize (5) with secure aggregation on, got 4'],
    ];
    for (const [flags, spec, flagError, specError] of cases) {
      expect(() => loadCoordinatorConfig(['--min-trainers', '2', ...flags], {})).toThrow(flagError);
      expect(() => parseJobSpec(`task: exercise\n${spec}`)).toThrow(specError);
    }
  });
});
