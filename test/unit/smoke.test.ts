import { describe, expect, it } from '@jest/globals';
const add = (a: number, b: number): number => a + b;
describe('toolchain', () => { it('runs TypeScript ESM under jest', () => { expect(add(1, 2)).toBe(3); }); });
