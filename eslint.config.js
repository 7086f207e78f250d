// Lint rules. Kernel-style names (snake_case, VM_* constants) are allowed under
// src/kernel/ only; everything else is camelCase. Layer boundaries follow
// DESIGN.md: cli -> scenario -> kernel -> sched, report reads only the trace format.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const layer = (from, forbidden) => ({
  files: [`src/${from}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: forbidden.map((l) => ({
          group: [`**/${l}/**`, `**/${l}`],
          message: `DESIGN.md layers: src/${from} must not import src/${l}`,
        })),
      },
    ],
  },
});

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      'require-yield': 'off',
      '@typescript-eslint/no-this-alias': 'off',
      '@typescript-eslint/naming-convention': [
        'error',
        {
          selector: 'variableLike',
          format: ['camelCase', 'UPPER_CASE', 'PascalCase'],
          leadingUnderscore: 'allow',
        },
        { selector: 'typeLike', format: ['PascalCase'] },
      ],
    },
  },
  {
    files: ['src/kernel/**/*.ts'],
    rules: { '@typescript-eslint/naming-convention': 'off', camelcase: 'off' },
  },
  layer('sched', ['kernel', 'scenario', 'cli', 'report']),
  layer('kernel', ['scenario', 'cli', 'report']),
  layer('scenario', ['cli']),
  layer('report', ['sched', 'kernel', 'scenario', 'cli']),
);
