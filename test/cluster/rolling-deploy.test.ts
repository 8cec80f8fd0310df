// A rolling deploy with Worker Versioning on the production topology: a Temporal Server v1.32.0
// on Postgres, two workers of build v1 draining three customers. Mid-drain, two workers of build
// v2 (a harmless workflow change: other current-details wording) join, `archiver deploy
// set-current` makes v2 current, and the v1 workers stop one by one with SIGTERM. The v2 workers
// and some CLI calls find the cluster through a Temporal config profile (TOML), not TEMPORAL_ADDRESS.
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { temporal as proto } from '@temporalio/proto';
import { startCustomer } from '../../client/archiver-client.js';
import { waitForVersion } from '../../client/deployments.js';
import { freePort } from '../../dev/ports.js';
import { writeWorkflowBundle } from '../../workers/bundle.js';
import { workflowIdFor } from '../../workflows/names.js';
import { startClusterStack, tokenOf, type ClusterStack } from '../support/cluster.js';
import { insertItems } from '../support/items.js';
import { expectArchivedExactlyOnce } from '../support/verify.js';
import type { WorkerProcess } from '../support/worker-process.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CUSTOMERS = ['r1', 'r2', 'r3'];
const ITEMS = 400;
/** Uploads/s each customer's Dropbox takes: 400 items last about 40 s, long enough to deploy mid-drain. */
const RATE = 10;
const V1 = '0.1.0-rolling-v1';
const V2 = '0.1.0-rolling-v2';
/** The harmless change of build v2: how the Web UI's current details word the totals. */
const V1_WORDING = '. Archived ';
const V2_WORDING = '. Archived (build v2) ';

let stack: ClusterStack;
let configFile: string;
const bundles: Record<string, string> = {};

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `npm run archiver -- …` as an operator runs it, against this cluster, within a minute; with
 * `profile`, it finds the cluster through the TOML profile instead of TEMPORAL_ADDRESS.
 */
async function archiver(args: string[], env: Record<string, string> = {}, profile = false): Promise<CliResult> {
  // ARCHIVER_DATA_DIR: no stack file of a local `npm start` leaks in.
  const childEnv: NodeJS.ProcessEnv = {
    ...process.env,
    ARCHIVER_DATA_DIR: stack.dir,
    ...connectionEnv(profile),
    ...env,
  };
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'client/cli.ts', ...args],
      { cwd: ROOT, timeout: 60_000, env: childEnv },
    );
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** How a process finds the cluster: TEMPORAL_ADDRESS, or the `rolling` profile of a Temporal config file. */
function connectionEnv(profile: boolean): Record<string, string> {
  return profile
    ? { TEMPORAL_CONFIG_FILE: configFile, TEMPORAL_PROFILE: 'rolling' }
    : { TEMPORAL_ADDRESS: stack.temporal.address };
}

/** A worker of `buildId`, once it polls; the v2 workers find the cluster through the TOML profile. */
function spawnWorker(buildId: string): Promise<WorkerProcess> {
  return stack.addWorker({
    ...(buildId === V2 ? { TEMPORAL_ADDRESS: undefined } : {}),
    ...connectionEnv(buildId === V2),
    ARCHIVER_WORKFLOW_BUNDLE: bundles[buildId] as string,
    ARCHIVER_WORKER_VERSIONING: 'true',
    ARCHIVER_BUILD_ID: buildId,
    ARCHIVER_SHUTDOWN_GRACE: '10s',
  });
}

/** Waits until `condition` holds, checking every 500 ms; fails naming `what` after `ms`. */
async function until(what: string, ms: number, condition: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

const archivedCount = () => stack.archived(CUSTOMERS);

interface HistoryScan {
  /** Each failed workflow task as `<customer> <cause>: <message>`. */
  failedTasks: string[];
  /** Workflow tasks completed per build id. */
  tasksOn: Map<string, number>;
}

/** Reads every run of the customer's workflow: its failed workflow tasks and which builds completed its tasks. */
async function scanHistories(id: string): Promise<HistoryScan> {
  const scan: HistoryScan = { failedTasks: [], tasksOn: new Map() };
  const { client } = stack;
  for await (const run of client.workflow.list({ query: `WorkflowId = '${workflowIdFor(id)}'` })) {
    const history = await client.workflow.getHandle(workflowIdFor(id), run.runId).fetchHistory();
    for (const e of history.events ?? []) {
      const failed = e.workflowTaskFailedEventAttributes;
      if (failed) {
        const cause = proto.api.enums.v1.WorkflowTaskFailedCause[failed.cause ?? 0];
        scan.failedTasks.push(`${id} ${cause}: ${failed.failure?.message?.split('\n')[0]}`);
      }
      const buildId = e.workflowTaskCompletedEventAttributes?.deploymentVersion?.buildId;
      if (buildId) scan.tasksOn.set(buildId, (scan.tasksOn.get(buildId) ?? 0) + 1);
    }
  }
  return scan;
}

beforeAll(async () => {
  // Workers and the CLI read TEMPORAL_ADDRESS from the environment first: none may leak in here.
  for (const name of ['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'TEMPORAL_CONFIG_FILE', 'TEMPORAL_PROFILE'])
    delete process.env[name];
  stack = await startClusterStack({ customers: CUSTOMERS, rate: RATE, workers: 0 });
  configFile = join(stack.dir, 'temporal.toml');
  writeFileSync(
    configFile,
    `[profile.default]\naddress = "127.0.0.1:1"\n\n[profile.rolling]\naddress = "${stack.temporal.address}"\nnamespace = "default"\n`,
  );
  // Build v2 is build v1's bundle with its one harmless change, so the two differ only there.
  bundles[V1] = await writeWorkflowBundle(join(stack.dir, 'bundle-v1.js'), { quiet: true });
  const v1Code = readFileSync(bundles[V1], 'utf8');
  expect(v1Code.split(V1_WORDING)).toHaveLength(2);
  bundles[V2] = join(stack.dir, 'bundle-v2.js');
  writeFileSync(bundles[V2], v1Code.replace(V1_WORDING, V2_WORDING));
}, 30 * 60_000);

afterAll(async () => {
  await stack?.stop();
});

describe('a rolling deploy with Worker Versioning', () => {
  it(
    'moves every customer to the new build mid-drain, losing and duplicating nothing, without a nondeterminism error',
    async () => {
      const started = Date.now();
      const { client, db, emulator, media } = stack;
      const old = [await spawnWorker(V1), await spawnWorker(V1)];
      await waitForVersion(client, 'archiver', V1);
      // Versioned workers take no work until their version is current.
      const first = await archiver(['deploy', 'set-current', V1]);
      expect(first, first.stderr).toMatchObject({ code: 0 });
      expect(first.stdout).toContain(`${V1} is now the current version (was none`);

      for (const id of CUSTOMERS) await insertItems(db, id, tokenOf(id), media.url, ITEMS, { bytes: 1_000 });
      for (const id of CUSTOMERS) await startCustomer(client, id, `Rolling ${id}`);
      const total = CUSTOMERS.length * ITEMS;
      await until('a quarter of the items to be archived', 90_000, async () => (await archivedCount()) >= total / 4);

      await Promise.all([spawnWorker(V2), spawnWorker(V2)]);
      await waitForVersion(client, 'archiver', V2);
      const deploy = await archiver(['deploy', 'set-current', V2]);
      expect(deploy, deploy.stderr).toMatchObject({ code: 0 });
      expect(deploy.stdout).toContain(`${V2} is now the current version (was ${V1})`);
      const atDeploy = await archivedCount();
      for (const w of old) {
        w.child.kill('SIGTERM');
        expect(await w.exited).toBe(0);
        await new Promise((r) => setTimeout(r, 2_000));
      }
      const oldGone = await archivedCount();

      // A build that cannot replay old histories stalls the drain: the histories say why.
      const drained = await until(
        'every item to be archived',
        120_000,
        async () => (await archivedCount()) === total,
      ).then(
        () => undefined,
        (err: Error) => err,
      );
      const seconds = (Date.now() - started) / 1000;
      const scans = new Map<string, HistoryScan>();
      for (const id of CUSTOMERS) scans.set(id, await scanHistories(id));
      const failedTasks = [...scans.values()].flatMap((scan) => scan.failedTasks);
      expect(failedTasks.filter((f) => /NON_DETERMINISTIC|nondetermin/i.test(f))).toEqual([]);
      if (drained) throw drained;
      await expectArchivedExactlyOnce(
        db,
        emulator,
        CUSTOMERS.map((id) => ({ id, accountId: id })),
      );
      // The drain was still going when v2 became current, and after both v1 workers had gone.
      expect(atDeploy).toBeLessThan(total);
      expect(oldGone).toBeLessThan(total);

      for (const [id, scan] of scans) {
        // Each customer ran on both builds: it was moved mid-drain, not started afresh.
        expect([...scan.tasksOn.keys()].sort(), id).toEqual([V1, V2]);
        const description = await client.workflow.getHandle(workflowIdFor(id)).describe();
        expect(description.status.name).toBe('RUNNING');
        const versioning = description.raw.workflowExecutionInfo?.versioningInfo;
        expect(versioning?.deploymentVersion?.buildId, id).toBe(V2);
        expect(versioning?.behavior).toBe(proto.api.enums.v1.VersioningBehavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE);
        // Build v2's code is what answers now: its wording is in the current details.
        const metadata = await client.workflow
          .getHandle(workflowIdFor(id))
          .query<{ currentDetails?: string }>('__temporal_workflow_metadata');
        expect(metadata.currentDetails).toContain('(build v2)');
        console.log(
          `rolling deploy: ${id} workflow tasks per build ${JSON.stringify(Object.fromEntries(scan.tasksOn))}`,
        );
      }
      const status = await archiver(['deploy', 'status'], {}, true);
      expect(status.code).toBe(0);
      expect(status.stdout).toContain(`current ${V2}`);
      expect(status.stdout).toMatch(new RegExp(`${V1}\\s+(draining|drained|inactive)`));
      console.log(
        `rolling deploy: ${total} items in ${seconds.toFixed(1)} s; v2 current at ${atDeploy} archived, v1 workers gone at ${oldGone}; ` +
          `workflow tasks failed (none for nondeterminism): ${failedTasks.length ? failedTasks.join('; ') : 'none'}`,
      );
    },
    5 * 60_000,
  );

  it('says what is wrong for an unknown build id, a bad one, an unknown deployment or profile, or a server that is not there', async () => {
    const help = await archiver(['deploy', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/set-current[\s\S]*status/);
    const setHelp = await archiver(['deploy', 'set-current', '--help']);
    expect(setHelp.stdout).toContain('<build-id>');
    expect(setHelp.stdout).toContain('next workflow task');
    const unknown = await archiver(['deploy', 'set-current', '9.9.9-nope']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no version "9.9.9-nope" in worker deployment "archiver"');
    expect(unknown.stderr).toContain(V2);
    const bad = await archiver(['deploy', 'set-current', 'has space']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/build id "has space" must be/);
    const noDeployment = await archiver(['deploy', 'status'], { ARCHIVER_DEPLOYMENT_NAME: 'elsewhere' });
    expect(noDeployment.code).toBe(2);
    expect(noDeployment.stderr).toContain('no worker deployment "elsewhere"');
    const noProfile = await archiver(['deploy', 'status'], { TEMPORAL_PROFILE: 'prod' }, true);
    expect(noProfile.code).toBe(2);
    expect(noProfile.stderr).toContain(
      `TEMPORAL_PROFILE: no profile "prod" in ${configFile} (it has "default", "rolling")`,
    );
    const dead = await archiver(['deploy', 'status'], {
      TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
      TEMPORAL_CONNECT_TIMEOUT: '3s',
    });
    expect(dead.code).toBe(1);
    expect(dead.stderr).toMatch(
      /Temporal at 127\.0\.0\.1:\d+ \(TEMPORAL_ADDRESS\) (refused the connection|did not answer)/,
    );
  });
});
