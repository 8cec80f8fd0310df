/**
 * `npm run bundle -- [file]`: writes the workflow bundle a worker would otherwise build at every
 * start (several CPU-seconds), for ARCHIVER_WORKFLOW_BUNDLE. Build it from the same source as the
 * worker that loads it: the Dockerfile does both in one image.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { FAILURE_CONVERTER_PATH } from '../temporal/payload-codec.js';
import { WORKFLOWS_PATH } from './worker.js';

/** Where `npm run bundle` writes when given no file. */
export const DEFAULT_BUNDLE_FILE = 'dist/workflow-bundle.js';

/** Bundles the workflow code into `file` and returns its absolute path. */
export async function writeWorkflowBundle(file: string, options: { quiet?: boolean } = {}): Promise<string> {
  const { code } = await bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    // Workflow failures' messages go into payloads, which the codec seals (temporal/payload-codec.ts).
    failureConverterPath: FAILURE_CONVERTER_PATH,
    // Quiet: webpack's report only for what went wrong.
    ...(options.quiet ? { logger: new DefaultLogger('WARN') } : {}),
  });
  const path = resolve(file);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, code);
  return path;
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h') || args.length > 1) {
    const usage = `usage: npm run bundle -- [file]   (default ${DEFAULT_BUNDLE_FILE}); then set ARCHIVER_WORKFLOW_BUNDLE to it`;
    (args.length > 1 ? console.error : console.log)(usage);
    process.exit(args.length > 1 ? 2 : 0);
  }
  const path = await writeWorkflowBundle(args[0] ?? DEFAULT_BUNDLE_FILE);
  console.log(`wrote the workflow bundle to ${path}; start workers with ARCHIVER_WORKFLOW_BUNDLE=${path}`);
}
