import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'coordinator/**/*.test.ts', 'trainer-node/**/*.test.ts', 'dataset-node/**/*.test.ts'],
    // TF.js wasm and gRPC servers behave best in their own processes.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 120_000,
    // Quiet unless a test fails: console output of passing tests is dropped, roles log to files
    // that a failing test prints (test/helpers.ts), and chopsticks' pino logger only fatal errors (the chain tests provoke its errors on purpose).
    silent: 'passed-only',
    env: { LOG_LEVEL: 'fatal' },
    hookTimeout: 60_000,
  },
});
