// npm run lint: typescript-eslint with type information (the rules that need the types
// are the ones that find real bugs here: promises nobody awaits or that are passed where
// a callback's result is ignored, conditions that are always true or false, switches
// that miss a case).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.herald/', 'loadtests/**/*.js', 'eslint.config.js'] },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // pg rows and parsed JSON are `any` here by design (zod checks what comes in at the edges); these flag every row access.
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      // Tests read response bodies as `any` on purpose (test-support's request()).
      '@typescript-eslint/no-explicit-any': 'off',
      // Koa handlers and interface implementations are async by contract even when they do not await.
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unnecessary-condition': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
    },
  },
  {
    files: ['**/*.test.ts'],
    rules: {
      // afterAll guards variables that a failed beforeAll never set (`api?.stop()`); their declared types cannot say so.
      '@typescript-eslint/no-unnecessary-condition': 'off',
    },
  },
);
