import { constants as fsConstants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';

/** Debian's `chromium` package; .ci/run installs it. We never download Playwright's own browsers. */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Where browser tests save what they saw (test/output/ is gitignored). */
export const TEST_OUTPUT_DIR = fileURLToPath(new URL('../output/', import.meta.url));

/**
 * Headless Chromium for tests. This machine has no internet: the flags keep Chromium from
 * phoning home (component updates, sync, field trials) and waiting on requests that never return.
 */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox', // we run as root in CI
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Launches Debian's Chromium, or fails with how to install it: a skipped browser test would prove nothing. */
export async function launchChromium(): Promise<Browser> {
  try {
    await access(CHROMIUM_PATH, fsConstants.X_OK);
  } catch {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM_PATH}; the Web UI test needs it. ` +
        "Install Debian's package (as root): apt-get update && apt-get install -y --no-install-recommends chromium " +
        '(.ci/run does this in CI). Do not use `npx playwright install`.',
    );
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, timeout: 60_000 });
}

/** The path of `name` under test/output/, creating the directory. */
export async function testOutputPath(name: string): Promise<string> {
  await mkdir(TEST_OUTPUT_DIR, { recursive: true });
  return TEST_OUTPUT_DIR + name;
}
