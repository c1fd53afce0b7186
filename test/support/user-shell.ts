// What a user's shell looks like, for tests that run commands exactly as the README writes them:
// no npm-run environment (npm_* variables) and no node_modules/.bin on the PATH (npm scripts and
// npx put it there themselves), so `node` is the machine's Node, as in a fresh terminal.
import { delimiter } from 'node:path';

export const USER_PATH = (process.env.PATH ?? '')
  .split(delimiter)
  .filter((dir) => !dir.includes('node_modules'))
  .join(delimiter);

export function userShellEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.toLowerCase().startsWith('npm_')) env[key] = value;
  }
  return { ...env, PATH: USER_PATH, ...extra };
}
