// ESM TypeScript run through Node's own type stripping (see test/support/strip-types-transform.cjs).
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '\\.ts$': '<rootDir>/test/support/strip-types-transform.cjs' },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  testTimeout: 60000,
  watchman: false,
};
