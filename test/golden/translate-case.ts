// One translation golden case: its folder's input/ as the manifest folder loads it, and the
// translate options of its options.yaml (defaults otherwise). Shared by the golden test and the
// translator fuzz test, which mutates these same inputs.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ManifestFolder, type FolderLoad } from '../../controller/sources/manifest-folder.ts';
import type { TranslateOptions } from '../../controller/translate/translate.ts';

export const TRANSLATE_CASES = join(import.meta.dirname, 'translate');
/** Timestamps in golden output must not move. */
export const FIXED_CLOCK = (): Date => new Date('2026-01-01T00:00:00Z');

export function translateOptionsOf(caseDir: string): TranslateOptions {
  const optionsFile = join(caseDir, 'options.yaml');
  const options = existsSync(optionsFile) ? parse(readFileSync(optionsFile, 'utf8')) : {};
  return {
    controllerName: options.controllerName ?? 'sluice.dev/gateway-controller',
    bindAddress: options.bindAddress ?? '127.0.0.1',
    servedClassNames: options.gatewayClasses ?? [],
    ingress: { classNames: ['cilium'], controllers: ['sluice.dev/ingress-controller'], enforceHttps: true, ...options.ingress },
    ...(options.policy ? { policy: options.policy } : {}),
  };
}

export function loadInputs(caseDir: string): FolderLoad {
  return new ManifestFolder(join(caseDir, 'input'), FIXED_CLOCK).load();
}
