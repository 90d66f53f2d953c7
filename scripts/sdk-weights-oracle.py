#!/usr/bin/env python3
"""
Writes test/fixtures/sdk-weights.json: random score vectors and subnet rules, with the u16
weights the Bittensor Python SDK makes of them. The SDK's path (bittensor/utils/weight_utils.py:
process_weights with exclude_quantile 0, normalize_max_weight, convert_weights_and_uids_for_emit)
is transcribed below, numpy only. The SDK requires numpy 2 (NEP 50 promotion: a Python float
meeting a float32 stays float32); run this with numpy >= 2.

    python3 scripts/sdk-weights-oracle.py > test/fixtures/sdk-weights.json
"""
import json
import random
import sys

import numpy as np

assert int(np.__version__.split('.')[0]) >= 2, 'numpy >= 2 is needed (the SDK uses it)'
U16_MAX = 65535


def normalize_max_weight(x, limit=0.1):
    epsilon = 1e-7
    weights = x.copy()
    values = np.sort(weights)
    if x.sum() == 0 or x.shape[0] * limit <= 1:
        return np.ones_like(x) / x.shape[0]
    estimation = values / values.sum()
    if estimation.max() <= limit:
        return weights / weights.sum()
    cumsum = np.cumsum(estimation, 0)
    estimation_sum = np.array([(len(values) - i - 1) * estimation[i] for i in range(len(values))])
    n_values = (estimation / (estimation_sum + cumsum + epsilon) < limit).sum()
    cutoff_scale = (limit * cumsum[n_values - 1] - epsilon) / (1 - (limit * (len(estimation) - n_values)))
    cutoff = cutoff_scale * values.sum()
    weights[weights > cutoff] = cutoff
    return weights / weights.sum()


def process_weights(uids, weights, num_neurons, min_allowed_weights, max_weight_limit):
    weights = weights.astype(np.float32)
    idx = np.argwhere(weights > 0).squeeze(axis=1)
    nz_uids = uids[idx]
    nz = weights[idx]
    if nz.size == 0 or num_neurons < min_allowed_weights:
        final = np.ones(num_neurons, dtype=np.int64) / num_neurons
        return np.arange(len(final)), final
    if nz.size < min_allowed_weights:
        w = np.ones(num_neurons, dtype=np.int64) * 1e-5
        w[idx] += nz
        normalized = normalize_max_weight(x=w, limit=max_weight_limit)
        return np.arange(len(normalized)), normalized
    return nz_uids, normalize_max_weight(x=nz, limit=max_weight_limit)


def convert_weights_and_uids_for_emit(uids, weights):
    weights = weights.tolist()
    uids = uids.tolist()
    if sum(weights) == 0:
        return [], []
    max_weight = float(max(weights))
    weights = [float(v) / max_weight for v in weights]
    out_uids, out_vals = [], []
    for w, u in zip(weights, uids):
        v = round(float(w) * int(U16_MAX))
        if v != 0:
            out_vals.append(v)
            out_uids.append(u)
    return out_uids, out_vals


def case(rng):
    n = rng.choice([1, 2, 3, 5, 8, 9, 16, 17, 31, 64, 129, 200, 256])
    kind = rng.random()
    scores = []
    for _ in range(n):
        r = rng.random()
        if r < 0.3:
            scores.append(0.0)
        elif kind < 0.3:
            scores.append(rng.random())
        elif kind < 0.6:
            scores.append(rng.random() ** 4)
        elif kind < 0.8:
            scores.append(round(rng.random(), 2))
        else:
            scores.append(rng.choice([0.5, 0.25, 1.0, 1e-6, 0.1]))
    # float32 values, written as the shortest decimal that reads back as the same float32.
    scores = [float(str(np.float32(s))) for s in scores]
    min_allowed = rng.choice([0, 1, 2, 4, 8, 16, 64, 300])
    max_limit = rng.choice([65535, 32767, 13107, 6553, 1000, 655])
    return n, scores, min_allowed, max_limit


def main():
    rng = random.Random(20261202)
    cases = []
    for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 400):
        n, scores, min_allowed, max_limit = case(rng)
        uids, w = process_weights(np.arange(n), np.array(scores, dtype=np.float32), n, min_allowed, max_limit / U16_MAX)
        out_uids, out_vals = convert_weights_and_uids_for_emit(uids, w)
        cases.append({'scores': scores, 'minAllowedWeights': min_allowed, 'maxWeightsLimit': max_limit, 'uids': out_uids, 'values': out_vals})
    json.dump({'numpy': np.__version__, 'cases': cases}, sys.stdout, separators=(',', ':'))
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
