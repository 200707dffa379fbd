import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Workspace packages resolve to their TypeScript sources, so tests need no build step.
  resolve: { conditions: ['source'] },
  ssr: { resolve: { conditions: ['source'], externalConditions: ['source'] } },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'services/*/test/**/*.test.ts', 'tests/**/*.test.ts'],
    // Training tests run real optimisation loops on a 2-core machine; they are bounded by work, not time.
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
