// A real browser for the web view's tests: Debian's chromium (no browser download), headless,
// with a fresh profile removed on close.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';

const EXECUTABLE = '/usr/bin/chromium';

/** The browser's path, or null where it is not installed. */
export const CHROMIUM: string | null = existsSync(EXECUTABLE) ? EXECUTABLE : null;

export async function launchBrowser(): Promise<Browser> {
  if (!CHROMIUM) throw new Error(`no chromium at ${EXECUTABLE}`);
  const profile = mkdtempSync(join(tmpdir(), 'sluice-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    // No sandbox: the tests run as root, where chromium refuses its sandbox.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`],
    timeout: 90_000,
  });
  // Removed once the browser process is gone: at 'disconnected' chromium may still be writing
  // into the profile (rmSync then fails with ENOTEMPTY, seen in CI). A leftover temporary
  // folder is not worth failing a test over, so a removal that still fails is left.
  const removeProfile = (): void => {
    try {
      rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    } catch {
      // left in the temporary folder
    }
  };
  const child = browser.process();
  if (child !== null && child.exitCode === null) child.once('exit', removeProfile);
  else browser.once('disconnected', removeProfile);
  return browser;
}
