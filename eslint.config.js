// ESLint: typescript-eslint's type-checked rules, no import cycles (eslint-plugin-import-x), and
// each src/ folder used only through its index.ts. `npm run lint` runs it; CI fails on any error.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';

/**
 * Importing a file of another src/ folder other than its public face: index.ts, or where part of
 * a folder needs TF.js and a process that never runs a model must not load it, the second face
 * of that part (model/contract.ts: what needs no TF.js; tasks/autolabel.ts: the TF.js teachers).
 */
const deep = (up) => ({
  regex: `^${up}(?!index\\.js$)[a-z-]+/(?!(index|contract|autolabel)\\.js$)[^/]+`,
  message: 'import another src/ folder through its index.ts (its public face), not one of its files',
});

export default tseslint.config(
  { ignores: ['node_modules/**', 'out/**', '.dev/**', 'coverage/**', 'src/wire/generated/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    plugins: { 'import-x': importX },
    settings: {
      // Modules are TypeScript imported by their .js names (NodeNext), parsed as TypeScript.
      'import-x/resolver-next': [importX.createNodeResolver({ extensions: ['.ts', '.js'], extensionAlias: { '.js': ['.ts', '.js'] } })],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/extensions': ['.ts', '.js'],
    },
    rules: {
      // A cycle between modules makes load order matter and folders inseparable.
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-self-import': 'error',
      // Unused names are dead code; a leading underscore marks one that must stay (a callback's arity).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Messages are built from numbers and enums everywhere; the rule would flag each of them.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true, allowNullish: true }],
      // proto-loader hands messages over as untyped objects, and JSON.parse returns any: values
      // from both are checked where they enter (wire/, job specs, the store) and typed there.
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
    },
  },
  // Files of src/<folder>/ and of src/<folder>/<sub>/ reach other folders only through index.ts.
  { files: ['src/*/*.ts'], rules: { 'no-restricted-imports': ['error', { patterns: [deep('\\.\\./')] }] } },
  { files: ['src/*/*/*.ts'], rules: { 'no-restricted-imports': ['error', { patterns: [deep('\\.\\./\\.\\./')] }] } },
  {
    files: ['coordinator/**/*.ts', 'trainer-node/**/*.ts', 'dataset-node/**/*.ts', 'bin/**/*.ts', 'bench/**/*.ts', 'test/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [deep('(\\.\\./)+src/')] }] },
  },
  // The config file and the scripts are plain JavaScript outside the TypeScript project.
  { files: ['eslint.config.js', 'scripts/**/*.mjs', 'test/fixtures/*.mjs'], ...tseslint.configs.disableTypeChecked },
  { files: ['scripts/**/*.mjs', 'test/fixtures/*.mjs'], languageOptions: { globals: { console: 'readonly', process: 'readonly', setTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly' } } },
);
