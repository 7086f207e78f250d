import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: [
      'src/**/*.test.ts',
      'test/**/*.test.ts',
      'scenarios/**/*.test.ts',
      'scripts/**/*.test.ts',
      'conformance/**/*.test.ts',
    ],
    testTimeout: 60_000,
  },
});
