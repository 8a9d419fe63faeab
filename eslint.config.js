// ESLint: typescript-eslint's recommended rules over the TypeScript sources.
// Type checking itself is `tsc` (see `npm run lint`).
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'test-results/**', 'playwright-report/**', '.scratch/**', '.tools/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      'no-empty': ['error', { allowEmptyCatch: false }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-restricted-syntax': ['error', {
        selector: "MemberExpression[object.name='process'][property.name='env']",
        message: 'Only server/config.ts (and the CLI/test harness) read process.env.',
      }],
    },
  },
  {
    files: ['server/config.ts', 'server/cli.ts', 'test/**', 'e2e/**', 'bench/**', 'scripts/**', 'client-demo/*.config.ts'],
    rules: { 'no-restricted-syntax': 'off' },
  },
);
