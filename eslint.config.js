// Lint: typescript-eslint's recommended rules everywhere; in workflows/, no Node
// built-ins, clocks or randomness (workflow code is replayed and must be deterministic).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

export default tseslint.config(
  { ignores: ['node_modules/**', '.flotilla/**', 'reports/**', 'stack/gobin/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'Workflows are replayed: no Node built-ins.' })),
          patterns: [
            { group: ['../activities/*', '!../activities/*.ts'], message: 'Import activities with `import type` only.' },
          ],
        },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'Use workflow time (Date is replaced inside workflows; prefer sleep/condition).' },
        { object: 'Math', property: 'random', message: 'Use uuid4() or a seeded value from the workflow.' },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
);
