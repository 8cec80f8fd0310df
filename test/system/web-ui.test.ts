/**
 * What an operator reads in the Temporal Web UI: a real dev server WITH its UI (the suite's shared
 * server is headless), real workflows for three customers, and headless Chromium (Debian's
 * package, driven by playwright-core) filtering them by `ArchiverState` as the README says.
 */
import { testKeyring } from '../support/secret-keys.js';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { startCustomer } from '../../client/archiver-client.js';
import { startDropboxEmulator, type DropboxEmulator } from 'dropbox-emulator';
import { startMediaServer, type MediaServer } from '../../dev/media-server.js';
import { DEV_SERVER_SEARCH_ATTRIBUTES } from '../../dev/search-attributes.js';
import { startTemporalDevServer, type TemporalDevServer } from '../../dev/temporal-server.js';
import { workflowIdFor } from '../../workflows/names.js';
import { startCodecServer, type CodecServer } from '../../temporal/codec-server.js';
import { launchChromium, testOutputPath } from '../support/browser.js';
import { startTestWorker, statusWhen } from '../support/harness.js';
import { insertItems } from '../support/items.js';
import {
  connectTemporal,
  eventually,
  freshDatabase,
  uniqueName,
  type TestDatabase,
  type TestTemporal,
} from '../support/stack.js';

const TOKEN = 'token-web-ui';
/** Unknown to the emulator, so Dropbox answers 401 invalid_access_token and the customer needs reauth. */
const REVOKED_TOKEN = 'revoked-token';
const UI_TIMEOUT_MS = 45_000; // a cold SPA on two busy cores

const idleCustomers = [
  { id: uniqueName('acme'), name: 'Acme Dental' },
  { id: uniqueName('globex'), name: 'Globex Clinic' },
];
const reauthCustomer = { id: uniqueName('initech'), name: 'Initech Legal' };

let server: TemporalDevServer;
let uiUrl: string;
let database: TestDatabase;
let temporal: TestTemporal;
let emulator: DropboxEmulator;
let media: MediaServer;
let stopWorker: (() => Promise<void>) | undefined;
let browser: Browser | undefined;
/** Why Chromium did not start; each test fails with it (a failing beforeAll would report them as skipped). */
let browserError: Error | undefined;
let page: Page;
/** The codec server the operator's browser is pointed at, and the endpoint the UI is given. */
let codec: CodecServer;
let codecEndpoint: string;
const CODEC_TOKEN = 'web-ui-test-codec-token-1234';

beforeAll(async () => {
  // First, so a machine without Chromium fails in seconds, saying how to install it.
  try {
    browser = await launchChromium();
  } catch (err) {
    browserError = err as Error;
    return;
  }
  [server, database, emulator, media] = await Promise.all([
    startTemporalDevServer({ uiPort: 0, searchAttributes: DEV_SERVER_SEARCH_ATTRIBUTES }),
    freshDatabase(),
    startDropboxEmulator({ accounts: [{ token: TOKEN, accountId: 'web-ui' }] }),
    startMediaServer(),
  ]);
  if (!server.uiUrl) throw new Error('the Temporal dev server was started without its Web UI');
  uiUrl = server.uiUrl;
  codec = await startCodecServer({ keyring: testKeyring(), token: CODEC_TOKEN, origins: [uiUrl] });
  // The token as the path's first segment: a UI without sign-in sends no Authorization header.
  codecEndpoint = `${codec.url}/${CODEC_TOKEN}`;
  temporal = await connectTemporal('default', server.address);
  ({ stop: stopWorker } = await startTestWorker(temporal, { db: database.db, dropboxApiBase: emulator.url }));

  for (const c of idleCustomers) await insertItems(database.db, c.id, TOKEN, media.url, 15);
  await insertItems(database.db, reauthCustomer.id, REVOKED_TOKEN, media.url, 5);
  // As `archiver start` does: memo customerName, search attributes and a static summary.
  for (const c of [...idleCustomers, reauthCustomer])
    await startCustomer(temporal.client, c.id, c.name, { taskQueue: temporal.taskQueue });
  await Promise.all([
    ...idleCustomers.map((c) =>
      statusWhen(temporal.client, c.id, (s) => s.state === 'idle' && s.totals.archived === 15, 90_000),
    ),
    statusWhen(temporal.client, reauthCustomer.id, (s) => s.state === 'needs-reauth', 90_000),
  ]);
  // The UI reads the visibility store, which follows the workflows' search attributes a little later.
  await visibleAs(
    'idle',
    idleCustomers.map((c) => workflowIdFor(c.id)),
  );
  await visibleAs('needs-reauth', [workflowIdFor(reauthCustomer.id)]);
  // The UI's HTTP server comes up alongside the frontend, but is not what start-up waited for.
  await eventually(async () => ((await fetch(uiUrl)).ok ? true : undefined), 30_000, `the Web UI at ${uiUrl}`);

  const context = await browser.newContext({
    viewport: { width: 1600, height: 1000 },
    timezoneId: 'UTC',
    locale: 'en-US',
  });
  // The UI's codec setting (its "Codec Server" panel keeps it in localStorage), as an operator sets it.
  // It takes the browser's endpoint over the server's only with overrideRemoteCodecConfiguration.
  await context.addInitScript((endpoint) => {
    localStorage.setItem('endpoint', JSON.stringify(endpoint));
    localStorage.setItem('overrideRemoteCodecConfiguration', 'true');
  }, codecEndpoint);
  page = await context.newPage();
  page.setDefaultTimeout(UI_TIMEOUT_MS);
  page.setDefaultNavigationTimeout(UI_TIMEOUT_MS);
}, 240_000);

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  await stopWorker?.();
  await Promise.allSettled([temporal?.close(), database?.close(), emulator?.stop(), media?.stop(), codec?.close()]);
  await server?.stop();
});

function requireBrowser(): void {
  if (browserError) throw browserError;
}

/** Waits until the visibility query `ArchiverState = "<state>"` finds exactly `workflowIds`. */
async function visibleAs(state: string, workflowIds: string[]): Promise<void> {
  const wanted = [...workflowIds].sort();
  let found: string[] = [];
  try {
    await eventually(
      async () => {
        found = [];
        for await (const wf of temporal.client.workflow.list({ query: `ArchiverState = "${state}"` }))
          found.push(wf.workflowId);
        found.sort();
        return JSON.stringify(found) === JSON.stringify(wanted) ? true : undefined;
      },
      30_000,
      `ArchiverState = "${state}" in visibility`,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; found ${JSON.stringify(found)}, wanted ${JSON.stringify(wanted)}`);
  }
}

/** The UI's workflow list, filtered by a visibility query (the UI keeps it in `?query=`). */
function workflowListUrl(query: string): string {
  return `${uiUrl}/namespaces/default/workflows?query=${encodeURIComponent(query)}`;
}

/** The Archiver workflow ids the list page shows, in table order. */
async function listedWorkflowIds(): Promise<string[]> {
  const links = page.getByRole('table', { name: 'Workflows' }).getByRole('link', { name: /^archiver-customer-/ });
  return (await links.allTextContents()).map((t) => t.trim());
}

function normalized(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/**
 * The User Metadata tab's markdown (summary, then current details), which the UI renders in
 * sandboxed iframes, one per block.
 */
async function userMetadataTexts(): Promise<string[]> {
  const frames = page.getByRole('main').locator('iframe');
  const texts: string[] = [];
  for (let i = 0; i < (await frames.count()); i++) {
    texts.push(normalized(await frames.nth(i).contentFrame().locator('body').innerText({ timeout: 5_000 })));
  }
  return texts;
}

/** On failure, keep what the browser showed: a screenshot and the page's accessibility tree. */
function screenshotOnFailure(name: string): void {
  onTestFailed(async () => {
    if (!page || page.isClosed()) return;
    const path = await testOutputPath(`${name}-FAILED.png`);
    await page.screenshot({ path, fullPage: true }).catch(() => undefined);
    const tree = await page
      .locator('body')
      .ariaSnapshot()
      .catch(() => '(no accessibility tree)');
    console.log(`web UI at failure (${page.url()}), screenshot ${path}:\n${tree}`);
  });
}

describe('Temporal Web UI, as an operator uses it', () => {
  it('lists exactly the customers that need reauth when filtered by ArchiverState', async () => {
    requireBrowser();
    screenshotOnFailure('web-ui-needs-reauth');
    const reauthId = workflowIdFor(reauthCustomer.id);

    await page.goto(workflowListUrl('ArchiverState = "needs-reauth"'));
    await page.getByRole('link', { name: reauthId, exact: true }).first().waitFor();
    await expect.poll(listedWorkflowIds, { timeout: UI_TIMEOUT_MS }).toEqual([reauthId]);
    // The filter is shown as the operator typed it, and the count agrees with the table.
    await page.getByRole('button', { name: 'ArchiverState = "needs-reauth"' }).waitFor();
    await expect
      .poll(async () => normalized(await page.getByRole('heading', { level: 1 }).innerText()), {
        timeout: UI_TIMEOUT_MS,
      })
      .toBe('1 Workflow');
    const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: reauthId, exact: true }) });
    expect(await row.innerText()).toMatch(/Running/i);
    for (const c of idleCustomers) expect(await page.getByText(workflowIdFor(c.id)).count()).toBe(0);

    const screenshot = await testOutputPath('web-ui-needs-reauth.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`Web UI screenshot (ArchiverState = "needs-reauth"): ${screenshot}`);

    // The same filter for idle finds the other two, so the list above really was filtered.
    await page.goto(workflowListUrl('ArchiverState = "idle"'));
    const idleIds = idleCustomers.map((c) => workflowIdFor(c.id)).sort();
    await expect.poll(async () => (await listedWorkflowIds()).sort(), { timeout: UI_TIMEOUT_MS }).toEqual(idleIds);
  }, 120_000);

  it("shows the paused customer's state, reason, name and summary on its workflow page", async () => {
    requireBrowser();
    screenshotOnFailure('web-ui-needs-reauth-workflow');
    const reauthId = workflowIdFor(reauthCustomer.id);

    await page.goto(workflowListUrl('ArchiverState = "needs-reauth"'));
    await page.getByRole('link', { name: reauthId, exact: true }).first().click();
    await page.waitForURL((url) => url.pathname.includes(`/workflows/${reauthId}/`));
    await page.getByRole('heading', { level: 1, name: reauthId }).waitFor();
    await page.getByRole('tablist', { name: 'workflow detail' }).waitFor();

    await page.getByRole('tab', { name: 'Search Attributes' }).click();
    const attributes = page.getByRole('textbox', { name: 'Search Attributes' });
    await expect
      .poll(() => attributes.innerText(), { timeout: UI_TIMEOUT_MS })
      .toContain('"ArchiverState": "needs-reauth"');
    expect(await attributes.innerText()).toContain(`"CustomerId": "${reauthCustomer.id}"`);

    await page.getByRole('tab', { name: 'Memo' }).click();
    const memo = page.getByRole('textbox', { name: 'Memo' });
    await expect
      .poll(() => memo.innerText(), { timeout: UI_TIMEOUT_MS })
      .toContain(`"customerName": "${reauthCustomer.name}"`);

    // The summary startCustomer set, and the current details the workflow keeps up to date
    // (the UI asks the running worker for them), which say why it is paused.
    await page.getByRole('tab', { name: 'User Metadata' }).click();
    await page.getByRole('heading', { name: 'Current Details' }).waitFor();
    await expect
      .poll(userMetadataTexts, { timeout: UI_TIMEOUT_MS })
      .toEqual([
        expect.stringContaining(`${reauthCustomer.name} (${reauthCustomer.id})`),
        expect.stringMatching(/^needs-reauth: .*invalid_access_token.*\bArchived 0\b/),
      ]);
    expect((await userMetadataTexts()).join('\n')).not.toContain(REVOKED_TOKEN);

    const screenshot = await testOutputPath('web-ui-needs-reauth-workflow.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`Web UI screenshot (${reauthId}, User Metadata): ${screenshot}`);
  }, 120_000);
});

describe('Temporal Web UI and the codec server', () => {
  it("shows a customer's input and details as ciphertext without the codec, and readable through it", async () => {
    requireBrowser();
    const reauthId = workflowIdFor(reauthCustomer.id);
    const plain = await browser!.newContext({ viewport: { width: 1600, height: 1000 }, timezoneId: 'UTC' });
    const bare = await plain.newPage();
    bare.setDefaultTimeout(UI_TIMEOUT_MS);
    try {
      await bare.goto(`${uiUrl}/namespaces/default/workflows/${reauthId}`);
      await bare.getByRole('heading', { level: 1, name: reauthId }).waitFor();
      // The workflow's input, as the UI shows it without a codec: the sealed payload's bytes.
      const main = bare.getByRole('main');
      await expect.poll(() => main.innerText(), { timeout: UI_TIMEOUT_MS }).toMatch(/Input\s+"[A-Za-z0-9+/=]{60,}"/);
      expect(await main.innerText()).not.toContain(`"customerId"`);
      // Its summary and current details (the page above shows them through the codec) are not readable either.
      await bare.getByRole('tab', { name: 'User Metadata' }).click();
      await bare.getByRole('heading', { name: 'Current Details' }).waitFor();
      const metadata = normalized(await main.innerText());
      expect(metadata).not.toContain(reauthCustomer.name);
      expect(metadata).not.toContain('invalid_access_token');
      const without = await testOutputPath('web-ui-without-codec.png');
      await bare.screenshot({ path: without, fullPage: true });
      console.log(`Web UI screenshot without the codec: ${without}`);
    } finally {
      await plain.close();
    }

    await page.goto(`${uiUrl}/namespaces/default/workflows/${reauthId}`);
    await page.getByRole('heading', { level: 1, name: reauthId }).waitFor();
    await expect
      .poll(() => page.getByRole('main').innerText(), { timeout: UI_TIMEOUT_MS })
      .toContain(`"customerId": "${reauthCustomer.id}"`);
    const withCodec = await testOutputPath('web-ui-with-codec.png');
    await page.screenshot({ path: withCodec, fullPage: true });
    console.log(`Web UI screenshot through the codec server: ${withCodec}`);
  }, 120_000);
});
