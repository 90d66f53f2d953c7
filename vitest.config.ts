import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'coordinator/**/*.test.ts', 'trainer-node/**/*.test.ts', 'dataset-node/**/*.test.ts'],
    // TF.js wasm and gRPC servers behave best in their own processes.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 120_000,
    hookTimeout: 60_000,
  },
});
