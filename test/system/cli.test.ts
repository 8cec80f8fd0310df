import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { itemsAvailableSignal } from '../../workflows/messages.js';
import { TASK_QUEUE, verifyScheduleIdFor, workflowIdFor } from '../../workflows/names.js';
import { loadTokens } from '../../db/tokens.js';
import { statusWhen } from '../support/harness.js';
import { testKeyring } from '../support/secret-keys.js';
import { insertItems } from '../support/items.js';
import { uniqueName } from '../support/stack.js';
import { useArchiverStack } from '../support/archiver-stack.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The Dropbox app the worker refreshes tokens with, so reconnect can check refresh tokens. */
const APP = { key: 'archiver-cli-test-app', secret: 'archiver-cli-test-secret' };

// The CLI starts workflows on the production task queue; this file has a namespace of its own.
const stack = useArchiverStack({
  namespace: 'cli',
  taskQueue: TASK_QUEUE,
  emulator: { apps: [APP] },
  worker: { dropboxApp: APP },
});

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `npm run seed -- …`, the development script, against this file's database. */
const seed = (args: string[]): Promise<CliResult> => archiver(args, {}, 'dev/seed.ts');

/**
 * Runs `npm run archiver -- …` as operators do (without npm's banner), against this file's stack;
 * a variable given as '' is unset.
 */
async function archiver(
  args: string[],
  env: Record<string, string> = {},
  script = 'client/cli.ts',
): Promise<CliResult> {
  const childEnv: NodeJS.ProcessEnv = {
    ...process.env,
    TEMPORAL_ADDRESS: stack.temporal.address,
    TEMPORAL_NAMESPACE: 'cli',
    DATABASE_URL: stack.database.url,
    ...env,
  };
  for (const [name, value] of Object.entries(env)) if (value === '') delete childEnv[name];
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', 'tsx', script, ...args], {
      cwd: ROOT,
      env: childEnv,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('archiver CLI', () => {
  it('explains itself with --help, on the program and on each command', async () => {
    const help = await archiver(['--help']);
    expect(help.code).toBe(0);
    for (const command of [
      'customers',
      'start',
      'status',
      'pause',
      'resume',
      'reconnect',
      'set-limits',
      'retry-failed',
      'stop',
      'audit',
      'verify',
    ])
      expect(help.stdout).toContain(command);
    const start = await archiver(['start', '--help']);
    expect(start.stdout).toContain('--all');
    expect((await archiver(['customers', 'add', '--help'])).stdout).toContain('--access-token');
  });

  it('adds a customer, starts it idempotently, and reports its status', async () => {
    const id = uniqueName('cli');
    const token = `secret-${id}`;
    stack.emulator.addAccount({ token, accountId: id });
    const added = await archiver(['customers', 'add', id, '--name', 'Acme Dental', '--access-token', token]);
    expect(added).toMatchObject({ code: 0 });
    const listed = await archiver(['customers', 'list']);
    expect(listed.stdout).toContain('Acme Dental');
    expect(listed.stdout).not.toContain(token);
    await insertItems(stack.database.db, id, token, stack.media.url, 12);

    expect((await archiver(['start', id])).stdout).toContain(`${id}: started`);
    expect((await archiver(['start', id])).stdout).toContain(`${id}: already running`);
    await statusWhen(stack.temporal.client, id, (s) => s.totals.archived === 12 && s.state === 'idle');

    const json = await archiver(['status', id, '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject([
      { customerId: id, state: 'idle', backlog: 0, totals: { archived: 12 } },
    ]);
    const table = await archiver(['status']);
    expect(table.stdout).toMatch(/^CUSTOMER\s+STATE\s+BACKLOG\s+RETRYING\s+LAG\s+TODAY\s+ARCHIVED/);
    expect(table.stdout).toMatch(new RegExp(`${id}\\s+idle\\s+0\\s+0\\s+-\\s+12\\s+12\\s+0`));

    expect((await archiver(['pause', id, '--reason', 'disk audit'])).code).toBe(0);
    await statusWhen(stack.temporal.client, id, (s) => s.state === 'paused' && s.pauseReason === 'disk audit');
    expect((await archiver(['resume', id])).code).toBe(0);
    await statusWhen(stack.temporal.client, id, (s) => s.state === 'idle');
  });

  it('starts every active customer with --all', async () => {
    const ids = [uniqueName('all'), uniqueName('all')];
    for (const id of ids) await archiver(['customers', 'add', id, '--name', id]);
    const result = await archiver(['start', '--all']);
    expect(result.code).toBe(0);
    for (const id of ids) expect(result.stdout).toMatch(new RegExp(`${id}: (started|already running)`));
  });

  it('starts a customer in sessions commit mode', async () => {
    const id = uniqueName('sessions');
    const token = uniqueName('tok');
    stack.emulator.addAccount({ token, accountId: id });
    await archiver(['customers', 'add', id, '--name', 'Many Small Files', '--access-token', token]);
    await insertItems(stack.database.db, id, undefined, stack.media.url, 8);
    expect((await archiver(['start', id, '--commit-mode', 'sessions'])).code).toBe(0);
    await statusWhen(stack.temporal.client, id, (s) => s.totals.archived === 8 && s.state === 'idle');
    expect(
      stack.emulator.stats().accounts[id]?.requests['/2/files/upload_session/finish_batch_v2 200'],
    ).toBeGreaterThanOrEqual(1);
    expect(stack.emulator.stats().accounts[id]?.requests['/2/files/upload 200']).toBeUndefined();
    const bogus = await archiver(['start', id, '--commit-mode', 'sometimes']);
    expect(bogus.code).toBe(2);
    expect(bogus.stderr).toContain('Allowed choices are single, sessions');
  });

  it('caps a customer with set-limits, re-drives failed items, and stops a disconnected customer', async () => {
    const id = uniqueName('ops');
    const token = uniqueName('tok');
    stack.emulator.addAccount({ token, accountId: id });
    await archiver(['customers', 'add', id, '--name', 'Ops Co', '--access-token', token]);
    const [gone] = await insertItems(stack.database.db, id, undefined, stack.media.url, 1, {
      sourceUrl: `${stack.media.url}/missing`,
    });
    await insertItems(stack.database.db, id, undefined, stack.media.url, 3);
    await archiver(['start', id]);
    await statusWhen(
      stack.temporal.client,
      id,
      (s) => s.totals.archived === 3 && s.totals.failed === 1 && s.state === 'idle',
    );

    const capped = await archiver(['set-limits', id, '--max-rate', '5', '--max-concurrency', '2']);
    expect(capped).toMatchObject({ code: 0, stdout: expect.stringContaining('"maxRatePerSecond":5') });
    expect((await statusWhen(stack.temporal.client, id, () => true)).operatorLimits).toEqual({
      maxRatePerSecond: 5,
      maxConcurrency: 2,
    });
    expect((await archiver(['status', id])).stdout).toContain('5/s,W≤2');
    const off = await archiver(['set-limits', id, '--max-concurrency', 'off']);
    expect(off.stderr).toBe('');
    expect(off.stdout).toContain('{"maxRatePerSecond":5}');
    const badCap = await archiver(['set-limits', id, '--max-batch', '0']);
    expect(badCap).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--max-batch must be a whole number of items from 1 to 500, or "off"'),
    });

    // The media is back: re-driving the failed item archives it.
    await stack.database.db.query(
      `UPDATE archive_items SET source_url = replace(source_url, '/missing', $2) WHERE id = $1`,
      [gone, `/synthetic/back-${id}?bytes=10`],
    );
    expect((await archiver(['retry-failed', id, '--kind', 'fax'])).stdout).toContain('0 failed items re-queued');
    expect((await archiver(['retry-failed', id, '--since', '2000-01-01'])).stdout).toContain(
      '1 failed items re-queued',
    );
    await statusWhen(stack.temporal.client, id, (s) => s.totals.archived === 4 && s.state === 'idle');
    expect((await archiver(['retry-failed', id, '--since', 'yesterday-ish'])).stderr).toContain(
      '--since must be a date',
    );

    const stopped = await archiver(['stop', id]);
    expect(stopped).toMatchObject({ code: 0, stdout: expect.stringContaining(`${id}: stopped; marked disconnected`) });
    expect((await archiver(['start', '--all'])).stdout).not.toContain(id);
    expect((await archiver(['stop', 'nobody'])).stderr).toContain('unknown customer "nobody"');
  });

  it('exits 3 from status when a customer needs re-authorisation, listing it first', async () => {
    const id = uniqueName('aaa-reauth');
    await archiver(['customers', 'add', id, '--name', 'Revoked Co', '--access-token', 'no-such-token']);
    await insertItems(stack.database.db, id, 'no-such-token', stack.media.url, 2);
    await archiver(['start', id]);
    await statusWhen(stack.temporal.client, id, (s) => s.state === 'needs-reauth');
    const result = await archiver(['status']);
    expect(result.code).toBe(3);
    expect(result.stdout.split('\n')[1]).toMatch(new RegExp(`^${id}\\s+needs-reauth`));
    expect(result.stdout).not.toContain('no-such-token');
  });

  it('reconnects a customer paused as needs-reauth with new credentials', async () => {
    const id = uniqueName('reconnect');
    await archiver(['customers', 'add', id, '--name', 'Lapsed Co', '--access-token', 'lapsed-token']);
    await insertItems(stack.database.db, id, undefined, stack.media.url, 4);
    await archiver(['start', id]);
    await statusWhen(stack.temporal.client, id, (s) => s.state === 'needs-reauth');

    const refused = await archiver(['reconnect', id, '--access-token', 'still-not-valid']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`Dropbox refused the new credentials for ${id}`);
    expect(refused.stderr).not.toContain('still-not-valid');

    const token = uniqueName('good');
    stack.emulator.addAccount({ token, accountId: id });
    const ok = await archiver(['reconnect', id, '--access-token', token]);
    expect(ok).toMatchObject({ code: 0, stdout: expect.stringContaining('credentials work') });
    expect(ok.stdout).not.toContain(token);
    await statusWhen(stack.temporal.client, id, (s) => s.totals.archived === 4 && s.state === 'idle');
    // The trail holds the operator's actions that succeeded, the archivals, and no token.
    const trail = await archiver(['audit', 'export', id, '--format', 'jsonl'], { ARCHIVER_OPERATOR: 'dana' });
    const rows = trail.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { kind: string; command: string | null });
    expect(rows.filter((r) => r.kind === 'operator.action').map((r) => r.command)).toEqual([
      'customers add',
      'start',
      'reconnect',
    ]);
    expect(rows.filter((r) => r.kind === 'item.archived')).toHaveLength(4);
    for (const secret of ['lapsed-token', 'still-not-valid', token]) expect(trail.stdout).not.toContain(secret);
    expect((await archiver(['audit', 'verify', id])).code).toBe(0);
    expect((await archiver(['reconnect', 'nobody', '--refresh-token', 'x'])).stderr).toContain(
      'unknown customer "nobody"',
    );
  });

  it('schedules a daily verification on start, verifies on demand, and shows the drift in status', async () => {
    const id = uniqueName('verify');
    const token = `secret-${id}`;
    stack.emulator.addAccount({ token, accountId: id });
    await archiver(['customers', 'add', id, '--name', 'Verify Co', '--access-token', token]);
    await insertItems(stack.database.db, id, token, stack.media.url, 4);
    expect((await archiver(['start', id])).code).toBe(0);
    const schedule = await stack.temporal.client.schedule.getHandle(verifyScheduleIdFor(id)).describe();
    expect(schedule.spec.intervals).toMatchObject([{ every: 86_400_000 }]);
    expect(schedule.action).toMatchObject({
      type: 'startWorkflow',
      workflowType: 'verifyArchive',
      taskQueue: TASK_QUEUE,
    });
    await statusWhen(stack.temporal.client, id, (s) => s.totals.archived === 4 && s.state === 'idle');

    const [gone] = stack.emulator.files(id);
    expect(stack.emulator.removeFile(id, gone?.pathLower as string)).toBe(true);
    stack.emulator.putFile(id, '/Archiver/readme.txt', 'the customer wrote this');
    const verified = await archiver(['verify', id]);
    expect(verified).toMatchObject({ code: 0 });
    expect(verified.stdout).toContain(
      `${id}: listed 4 files in 1 pages: 4 expected, 3 present, 1 missing, 0 changed, 1 re-queued, 1 unknown`,
    );
    expect(verified.stdout).toContain('files Archiver never wrote, left alone: /archiver/readme.txt');
    const table = await archiver(['status', id]);
    expect(table.stdout).toMatch(/VERIFIED\s+DRIFT/);
    expect(table.stdout).toMatch(/\s1 \(\+1 unknown\)/);
    await statusWhen(stack.temporal.client, id, (s) => s.totals.archived === 5 && s.state === 'idle');
    expect(stack.emulator.files(id).some((f) => f.pathLower === gone?.pathLower)).toBe(true);

    const again = await archiver(['verify', id, '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ expected: 4, present: 4, missing: 0, requeued: 0, unknown: 1 });
    expect((await archiver(['verify', '--help'])).stdout).toContain('daily');
    const unknown = await archiver(['verify', 'nobody-here']);
    expect(unknown).toMatchObject({ code: 2, stderr: expect.stringContaining('unknown customer "nobody-here"') });
  });

  it('customers add --no-manifests turns day manifests off, and archiver manifests writes the due ones and names them', async () => {
    const id = uniqueName('manifests');
    const token = `secret-${id}`;
    stack.emulator.addAccount({ token, accountId: id });
    expect(
      (await archiver(['customers', 'add', id, '--name', 'Ledger Co', '--access-token', token, '--no-manifests'])).code,
    ).toBe(0);
    const day = new Date(Date.now() - 3 * 86_400_000).toISOString().slice(0, 10);
    await stack.database.db.query(
      `INSERT INTO archive_items (customer_id, kind, occurred_at, body, state, remote_path, content_hash, size_bytes, archived_at)
       VALUES ($1, 'sms', $2, 'hello', 'archived', $3, 'seeded-hash', 5, now())`,
      [id, `${day}T09:00:00Z`, `/Archiver/100/${day}/SMS/090000_${id}.txt`],
    );
    expect((await archiver(['manifests', id])).stdout).toContain(`${id}: day manifests are off`);
    expect(stack.emulator.files(id)).toEqual([]);

    expect((await archiver(['customers', 'add', id, '--manifests'])).code).toBe(0);
    const written = await archiver(['manifests', id]);
    expect(written).toMatchObject({ code: 0 });
    expect(written.stdout).toContain(`${id}: wrote /Archiver/manifests/${day}.csv (${day}, 1 items`);
    expect(stack.emulator.files(id).map((f) => f.pathDisplay)).toEqual([`/Archiver/manifests/${day}.csv`]);
    expect((await archiver(['manifests', id])).stdout).toContain(`${id}: no day manifest is due`);
  });

  it('names the problem and exits 2 for unknown customers, bad arguments and bad configuration', async () => {
    const unknown = await archiver(['start', 'nobody-here']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown customer "nobody-here"');
    expect((await archiver(['status', 'nobody-here'])).stderr).toContain('no running archiver workflow');
    const both = await archiver(['start']);
    expect(both).toMatchObject({ code: 2, stderr: expect.stringContaining('exactly one of <id> or --all') });
    const badSeed = await seed(['--customers', 'many', '--items', '3']);
    expect(badSeed.code).toBe(2);
    expect(badSeed.stderr).toContain('--customers must be a positive integer');
    const badConfig = await archiver(['customers', 'list'], { DATABASE_URL: 'mysql://admin:hunter2@db/x' });
    expect(badConfig.code).toBe(2);
    expect(badConfig.stderr).toContain('DATABASE_URL');
    expect(badConfig.stderr).not.toContain('hunter2');
    const badTemplate = await archiver([
      'customers',
      'add',
      'tpl',
      '--name',
      'x',
      '--path-template',
      '{root}/{date}.{ext}',
    ]);
    expect(badTemplate).toMatchObject({ code: 2, stderr: expect.stringContaining('must contain {id}') });
    const emptyToken = await archiver(['customers', 'add', 'empty', '--name', 'x', '--access-token', ' ']);
    expect(emptyToken).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--access-token must be 1-4096 printable ASCII characters without spaces'),
    });
    const badId = await archiver(['customers', 'add', 'no spaces allowed', '--name', 'x']);
    expect(badId.code).toBe(2);
    expect(badId.stderr).toContain('must be 1-64 letters');
  });

  it('seeds demo customers and items', async () => {
    const prefix = uniqueName('seed');
    const result = await seed([
      '--customers',
      '2',
      '--items',
      '5',
      '--prefix',
      prefix,
      '--media-base',
      stack.media.url,
    ]);
    expect(result.code).toBe(0);
    const [row] = await stack.database.db.query<{ n: string }>(
      `SELECT count(*) AS n FROM archive_items WHERE customer_id LIKE $1`,
      [`${prefix}-%`],
    );
    expect(Number(row?.n)).toBe(10);
  });

  it('a reconnect Dropbox refuses leaves a healthy customer and its credentials exactly as they were', async () => {
    const id = uniqueName('keep');
    const token = uniqueName('tok');
    stack.emulator.addAccount({ token, accountId: id });
    await archiver(['customers', 'add', id, '--name', 'Keep Co', '--access-token', token]);
    await insertItems(stack.database.db, id, undefined, stack.media.url, 1);
    await archiver(['start', id]);
    await statusWhen(stack.temporal.client, id, (s) => s.totals.archived === 1 && s.state === 'idle');
    const credentials = async () =>
      (
        await stack.database.db.query(
          `SELECT dropbox_access_token, dropbox_refresh_token, dropbox_token_expires_at,
                  candidate_id, candidate_access_token, candidate_refresh_token
             FROM customers WHERE id = $1`,
          [id],
        )
      )[0];
    const before = await credentials();
    for (const given of [
      ['--access-token', 'revoked-or-never-valid'],
      ['--refresh-token', 'not-a-refresh-token'],
    ]) {
      const refused = await archiver(['reconnect', id, ...given]);
      expect(refused.code, refused.stderr).toBe(1);
      expect(refused.stderr).toMatch(
        new RegExp(`Dropbox refused the new credentials for ${id}, so the stored ones are unchanged: \\S`),
      );
      expect(refused.stderr).not.toContain(given[1]);
      expect(await credentials()).toEqual(before);
    }
    // Still running on its old credentials.
    expect((await statusWhen(stack.temporal.client, id, () => true)).state).toBe('idle');
    await insertItems(stack.database.db, id, undefined, stack.media.url, 1);
    // This file's worker runs no notifier: wake the customer as the notifier would.
    await stack.temporal.client.workflow.getHandle(workflowIdFor(id)).signal(itemsAvailableSignal);
    await statusWhen(stack.temporal.client, id, (s) => s.totals.archived === 2 && s.state === 'idle');

    // Credentials Dropbox accepts replace the stored ones: a refresh token, with the access token minted from it.
    const refreshToken = uniqueName('rt');
    stack.emulator.addAccount({ accountId: uniqueName('moved'), refreshToken, appKey: APP.key });
    const moved = await archiver(['reconnect', id, '--refresh-token', refreshToken]);
    expect(moved).toMatchObject({ code: 0, stdout: expect.stringContaining(`${id}: credentials work`) });
    expect(await credentials()).toMatchObject({
      dropbox_refresh_token: expect.stringMatching(/^v1:test-1:/),
      dropbox_token_expires_at: expect.any(Date),
      candidate_id: null,
      candidate_refresh_token: null,
    });
    // Sealed again for the stored columns, so they open there.
    const stored = await loadTokens(stack.database.db, testKeyring(), id);
    expect(stored).toMatchObject({ refreshToken, accessToken: expect.stringMatching(/^sl\./) });
  });

  it('refuses to reconnect a customer whose workflow is not running, changing nothing', async () => {
    const id = uniqueName('idle');
    const token = uniqueName('tok');
    stack.emulator.addAccount({ token, accountId: id });
    await archiver(['customers', 'add', id, '--name', 'Not Started Co', '--access-token', token]);
    const refused = await archiver(['reconnect', id, '--access-token', 'some-other-token']);
    expect(refused).toMatchObject({
      code: 2,
      stderr: expect.stringContaining(`customer ${id} has no running archiver workflow to check the credentials`),
    });
    const [row] = await stack.database.db.query<{ candidate_id: string | null }>(
      `SELECT candidate_id FROM customers WHERE id = $1`,
      [id],
    );
    expect(row).toEqual({ candidate_id: null });
    expect(await loadTokens(stack.database.db, testKeyring(), id)).toMatchObject({ accessToken: token });
  });

  it('pause and resume say what happened; a resume the credentials refuse exits 1 with the reason', async () => {
    const id = uniqueName('pr');
    const token = uniqueName('tok');
    stack.emulator.addAccount({ token, accountId: id });
    await archiver(['customers', 'add', id, '--name', 'Pause Co', '--access-token', token]);
    await archiver(['start', id]);
    await statusWhen(stack.temporal.client, id, (s) => s.state === 'idle');
    expect((await archiver(['resume', id])).stdout).toContain(`${id}: not paused (idle); nothing to resume`);
    expect((await archiver(['pause', id, '--reason', 'audit'])).stdout).toContain(`${id}: paused`);
    const again = await archiver(['pause', id, '--reason', 'second thoughts']);
    expect(again).toMatchObject({
      code: 0,
      stdout: expect.stringContaining(`${id}: already paused as paused (audit)`),
    });
    expect((await statusWhen(stack.temporal.client, id, (s) => s.state === 'paused')).pauseReason).toBe('audit');
    expect((await archiver(['resume', id])).stdout).toContain(`${id}: resumed`);
    await statusWhen(stack.temporal.client, id, (s) => s.state === 'idle');
    // Pausing needs only Temporal: without a database it is done, and says it went unrecorded.
    const unrecorded = await archiver(['pause', id, '--reason', 'no database'], { DATABASE_URL: '' });
    expect(unrecorded).toMatchObject({ code: 0, stdout: expect.stringContaining(`${id}: paused`) });
    expect(unrecorded.stderr).toContain('pause is done, but not recorded on the audit trail: DATABASE_URL is not set');
    expect((await archiver(['resume', id])).stdout).toContain(`${id}: resumed`);
    await statusWhen(stack.temporal.client, id, (s) => s.state === 'idle');

    const lapsed = uniqueName('pr-lapsed');
    await archiver(['customers', 'add', lapsed, '--name', 'Lapsed Co', '--access-token', 'lapsed-token']);
    await insertItems(stack.database.db, lapsed, undefined, stack.media.url, 1);
    await archiver(['start', lapsed]);
    await statusWhen(stack.temporal.client, lapsed, (s) => s.state === 'needs-reauth');
    const refused = await archiver(['resume', lapsed]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      `${lapsed}: still needs-reauth; resume refused: Dropbox still rejects the credentials`,
    );
    // Pausing it again must not turn needs-reauth into a plain pause, which a resume would not check.
    const paused = await archiver(['pause', lapsed]);
    expect(paused.stdout).toContain(`${lapsed}: already paused as needs-reauth`);
    expect((await statusWhen(stack.temporal.client, lapsed, () => true)).state).toBe('needs-reauth');
  });

  it('customers add on an existing customer changes only the fields given; new customers get the defaults', async () => {
    const id = uniqueName('fields');
    const row = async () =>
      (
        await stack.database.db.query<{ name: string; folder_root: string; path_template: string | null }>(
          `SELECT name, folder_root, path_template FROM customers WHERE id = $1`,
          [id],
        )
      )[0];
    const noName = await archiver(['customers', 'add', id, '--folder-root', '/Custom']);
    expect(noName).toMatchObject({
      code: 2,
      stderr: expect.stringContaining(`customer ${id} does not exist; give --name`),
    });
    expect(await row()).toBeUndefined();

    expect((await archiver(['customers', 'add', id, '--name', 'Fields Co'])).code).toBe(0);
    expect(await row()).toEqual({ name: 'Fields Co', folder_root: '/Archiver', path_template: null });
    const template = '{root}/{date}/{id}.{ext}';
    await archiver([
      'customers',
      'add',
      id,
      '--name',
      'Fields Co',
      '--folder-root',
      '/Custom',
      '--path-template',
      template,
    ]);
    const renamed = await archiver(['customers', 'add', id, '--name', 'Renamed Co']);
    expect(renamed).toMatchObject({ code: 0, stdout: expect.stringContaining(`customer ${id} updated`) });
    expect(await row()).toEqual({ name: 'Renamed Co', folder_root: '/Custom', path_template: template });
    expect((await archiver(['customers', 'add', id, '--folder-root', '/Moved'])).code).toBe(0);
    expect(await row()).toEqual({ name: 'Renamed Co', folder_root: '/Moved', path_template: template });
    // A customer without credentials may still be given its first ones here.
    expect((await archiver(['customers', 'add', id, '--access-token', 'first-token'])).code).toBe(0);

    // Metadata sidecars are on by default, and stay as last set when the flag is not given.
    const sidecars = async () =>
      (await stack.database.db.query<{ sidecars: boolean }>(`SELECT sidecars FROM customers WHERE id = $1`, [id]))[0]
        ?.sidecars;
    expect(await sidecars()).toBe(true);
    expect((await archiver(['customers', 'add', id, '--no-sidecars'])).code).toBe(0);
    expect(await sidecars()).toBe(false);
    expect((await archiver(['customers', 'add', id, '--name', 'Renamed Again'])).code).toBe(0);
    expect(await sidecars()).toBe(false);
    expect((await archiver(['customers', 'add', id, '--sidecars'])).code).toBe(0);
    expect(await sidecars()).toBe(true);
  });

  it('customers add --time-zone sets the zone of day folders and manifests, refuses an unknown one, and refuses a change once items are archived', async () => {
    const id = uniqueName('zone');
    const row = async () =>
      (
        await stack.database.db.query<{ name: string; time_zone: string }>(
          `SELECT name, time_zone FROM customers WHERE id = $1`,
          [id],
        )
      )[0];
    const unknown = await archiver(['customers', 'add', id, '--name', 'Zone Co', '--time-zone', 'Mars/Olympus']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('--time-zone');
    expect(unknown.stderr).toContain('"Mars/Olympus" is not an IANA time zone name; give one like Europe/Berlin');
    expect(await row()).toBeUndefined();

    expect((await archiver(['customers', 'add', id, '--name', 'Zone Co'])).code).toBe(0);
    expect(await row()).toEqual({ name: 'Zone Co', time_zone: 'UTC' });
    expect((await archiver(['customers', 'add', id, '--name', 'Renamed', '--time-zone', '+05:00'])).code).toBe(2);
    expect(await row()).toEqual({ name: 'Zone Co', time_zone: 'UTC' });
    expect((await archiver(['customers', 'add', id, '--time-zone', 'pacific/auckland'])).code).toBe(0);
    expect(await row()).toEqual({ name: 'Zone Co', time_zone: 'Pacific/Auckland' });
    expect((await archiver(['customers', 'list'])).stdout).toContain(
      `${id}\tactive\tZone Co\t/Archiver\tPacific/Auckland`,
    );

    // Once an item is archived, another zone would move its day folder: refused, and the whole command changes nothing.
    await stack.database.db.query(
      `INSERT INTO archive_items (customer_id, kind, occurred_at, body, state, remote_path, content_hash, size_bytes, archived_at)
       VALUES ($1, 'sms', '2026-03-01T23:30:00Z', 'hello', 'archived', $2, 'seeded-hash', 5, now())`,
      [id, `/Archiver/100/2026-03-02/SMS/123000_${id}.txt`],
    );
    const moved = await archiver(['customers', 'add', id, '--name', 'Renamed', '--time-zone', 'America/Los_Angeles']);
    expect(moved.code).toBe(2);
    expect(moved.stderr).toContain(
      `customer ${id} already has items archived under time zone Pacific/Auckland; changing it to America/Los_Angeles would move`,
    );
    expect(await row()).toEqual({ name: 'Zone Co', time_zone: 'Pacific/Auckland' });
    // Giving the zone it already has is not a change.
    expect(
      (await archiver(['customers', 'add', id, '--time-zone', 'Pacific/Auckland', '--name', 'Renamed'])).code,
    ).toBe(0);
    expect(await row()).toEqual({ name: 'Renamed', time_zone: 'Pacific/Auckland' });
  });

  it('customers add --backfill-since skips the items before it, now and as they arrive, and a moved cut-off brings them back', async () => {
    const id = uniqueName('backfill');
    const states = async () =>
      Object.fromEntries(
        (
          await stack.database.db.query<{ state: string; n: number }>(
            `SELECT state, count(*)::int AS n FROM archive_items WHERE customer_id = $1 GROUP BY state`,
            [id],
          )
        ).map((r) => [r.state, r.n]),
      );
    const insertAt = (occurredAt: string) =>
      stack.database.db.query(
        `INSERT INTO archive_items (customer_id, kind, occurred_at, body) VALUES ($1, 'sms', $2, 'text')`,
        [id, occurredAt],
      );
    expect((await archiver(['customers', 'add', id, '--name', 'Backfill Co'])).code).toBe(0);
    await insertAt('2026-01-15T00:00:00Z');
    await insertAt('2026-03-15T00:00:00Z');
    await insertAt('2026-06-15T00:00:00Z');

    const cut = await archiver(['customers', 'add', id, '--backfill-since', '2026-05-01']);
    expect(cut).toMatchObject({
      code: 0,
      stdout: expect.stringContaining(
        'archiving items since 2026-05-01T00:00:00.000Z: 2 older items skipped, 0 skipped items re-queued',
      ),
    });
    const [row] = await stack.database.db.query<{ backfill_since: Date; name: string }>(
      'SELECT name, backfill_since FROM customers WHERE id = $1',
      [id],
    );
    expect(row).toEqual({ name: 'Backfill Co', backfill_since: new Date('2026-05-01T00:00:00Z') });
    // Old history the sync writes later is skipped as it arrives.
    await insertAt('2026-02-01T00:00:00Z');
    expect(await states()).toEqual({ pending: 1, skipped: 3 });

    // Other changes keep the cut-off; an earlier one brings back what it now covers.
    expect((await archiver(['customers', 'add', id, '--name', 'Backfill Co 2'])).code).toBe(0);
    expect(await states()).toEqual({ pending: 1, skipped: 3 });
    const moved = await archiver(['customers', 'add', id, '--backfill-since', '2026-03-01T00:00:00+01:00']);
    expect(moved.stdout).toContain('0 older items skipped, 1 skipped items re-queued');
    expect(await states()).toEqual({ pending: 2, skipped: 2 });
  });

  describe('refuses bad input, naming it, and changes nothing', () => {
    /** A customer archiving happily, with one failed item: every case below must leave it exactly so. */
    const healthy = uniqueName('healthy');

    beforeAll(async () => {
      const token = uniqueName('tok');
      stack.emulator.addAccount({ token, accountId: healthy });
      await archiver(['customers', 'add', healthy, '--name', 'Healthy Co', '--access-token', token]);
      await insertItems(stack.database.db, healthy, undefined, stack.media.url, 1, {
        sourceUrl: `${stack.media.url}/missing`,
      });
      await insertItems(stack.database.db, healthy, undefined, stack.media.url, 2);
      await archiver(['start', healthy]);
      await statusWhen(
        stack.temporal.client,
        healthy,
        (s) => s.totals.archived === 2 && s.totals.failed === 1 && s.state === 'idle',
      );
    });

    /** What a bad command could have changed: the customer's row, its items' states and its workflow. */
    async function snapshot(id: string): Promise<unknown> {
      const [row] = await stack.database.db.query(`SELECT * FROM customers WHERE id = $1`, [id]);
      const items = await stack.database.db.query(
        `SELECT state, count(*)::int AS n FROM archive_items WHERE customer_id = $1 GROUP BY state ORDER BY state`,
        [id],
      );
      const { state, pauseReason, operatorLimits } = await statusWhen(stack.temporal.client, id, () => true);
      return { row, items, workflow: { state, pauseReason, operatorLimits } };
    }

    const cases: [what: string, args: (id: string) => string[], message: string][] = [
      [
        '--max-rate Infinity',
        (id) => ['set-limits', id, '--max-rate', 'Infinity'],
        '--max-rate must be a decimal number of uploads per second from 0.2 to 2000, or "off"',
      ],
      ['a hex --max-rate', (id) => ['set-limits', id, '--max-rate', '0x10'], '--max-rate must be a decimal number'],
      [
        'an exponent --max-rate',
        (id) => ['set-limits', id, '--max-rate', '1e3'],
        '--max-rate must be a decimal number',
      ],
      ['a --max-rate below the floor', (id) => ['set-limits', id, '--max-rate', '0.01'], 'from 0.2 to 2000'],
      ['a --max-rate above the maximum', (id) => ['set-limits', id, '--max-rate', '5000'], 'from 0.2 to 2000'],
      ['a negative --max-rate', (id) => ['set-limits', id, '--max-rate', '-5'], '--max-rate must be'],
      ['a padded --max-rate', (id) => ['set-limits', id, '--max-rate', ' 5'], '--max-rate must be'],
      [
        'a --max-concurrency above 32',
        (id) => ['set-limits', id, '--max-concurrency', '33'],
        '--max-concurrency must be a whole number of uploads in flight from 1 to 32',
      ],
      [
        'a fractional --max-concurrency',
        (id) => ['set-limits', id, '--max-concurrency', '2.5'],
        '--max-concurrency must be a whole number',
      ],
      [
        'a hex --max-batch',
        (id) => ['set-limits', id, '--max-batch', '0x20'],
        '--max-batch must be a whole number of items from 1 to 500',
      ],
      [
        'a --max-batch above 500',
        (id) => ['set-limits', id, '--max-batch', '501'],
        '--max-batch must be a whole number of items from 1 to 500',
      ],
      [
        '--since 2026-02-30',
        (id) => ['retry-failed', id, '--since', '2026-02-30'],
        '--since must be a date like 2026-11-01',
      ],
      ['--since 1', (id) => ['retry-failed', id, '--since', '1'], '--since must be a date like 2026-11-01'],
      ['--since 2026-13-01', (id) => ['retry-failed', id, '--since', '2026-13-01'], '--since must be a date'],
      [
        '--since with hour 25',
        (id) => ['retry-failed', id, '--since', '2026-11-01T25:00:00Z'],
        '--since must be a date',
      ],
      [
        '--since without a time zone',
        (id) => ['retry-failed', id, '--since', '2026-11-01 12:00'],
        'with Z or an offset',
      ],
      [
        'a --backfill-since that is no date',
        (id) => ['customers', 'add', id, '--backfill-since', 'last week'],
        '--backfill-since must be a date like 2026-11-01',
      ],
      [
        'an impossible --backfill-since',
        (id) => ['customers', 'add', id, '--backfill-since', '2026-02-30'],
        '--backfill-since must be a date like 2026-11-01',
      ],
      [
        'a --backfill-since without a time zone',
        (id) => ['customers', 'add', id, '--backfill-since', '2026-11-01 12:00'],
        'with Z or an offset',
      ],
      [
        'a --backfill-since in the future',
        (id) => ['customers', 'add', id, '--backfill-since', '2999-01-01'],
        '--backfill-since must not be in the future',
      ],
      ['an empty --name', (id) => ['customers', 'add', id, '--name', ''], '--name must be 1-200 characters, not blank'],
      [
        'a blank --name',
        (id) => ['customers', 'add', id, '--name', '   '],
        '--name must be 1-200 characters, not blank',
      ],
      [
        'a --name with a control character',
        (id) => ['customers', 'add', id, '--name', 'Evil\u0007Co'],
        'without control characters',
      ],
      [
        'a relative --folder-root',
        (id) => ['customers', 'add', id, '--name', 'Healthy Co', '--folder-root', 'Archiver'],
        'folder root must be absolute',
      ],
      [
        'a --folder-root with ..',
        (id) => ['customers', 'add', id, '--name', 'Healthy Co', '--folder-root', '/a/../b'],
        'may not contain a ".." component',
      ],
      [
        'a --folder-root with //',
        (id) => ['customers', 'add', id, '--name', 'Healthy Co', '--folder-root', '/a//b'],
        'folder root has an empty component',
      ],
      [
        'a --folder-root of / alone',
        (id) => ['customers', 'add', id, '--name', 'Healthy Co', '--folder-root', '/'],
        'folder root has an empty component',
      ],
      [
        'a --folder-root with a reserved character',
        (id) => ['customers', 'add', id, '--name', 'Healthy Co', '--folder-root', '/a:b'],
        'holds a character Dropbox reserves',
      ],
      [
        'a --path-template with ..',
        (id) => ['customers', 'add', id, '--name', 'Healthy Co', '--path-template', '{root}/../{id}.{ext}'],
        'path template may not contain a ".." component',
      ],
      [
        'a --path-template with .',
        (id) => ['customers', 'add', id, '--name', 'Healthy Co', '--path-template', '{root}/./{id}.{ext}'],
        'path template may not contain a "." component',
      ],
      ['a blank --reason', (id) => ['pause', id, '--reason', '  '], '--reason must be 1-500 characters, not blank'],
      [
        'a token with a space',
        (id) => ['reconnect', id, '--access-token', 'two words'],
        '--access-token must be 1-4096 printable ASCII characters',
      ],
      [
        'a bad customer id',
        () => ['pause', 'no/such id'],
        "customer id \"no/such id\" must be 1-64 letters, digits, '-' or '_'",
      ],
      [
        'credentials on a customer that has some',
        (id) => ['customers', 'add', id, '--name', 'Healthy Co', '--access-token', 'unchecked-token'],
        `already has Dropbox credentials; replace them with: archiver reconnect`,
      ],
      ['an unknown option', (id) => ['pause', id, '--bogus'], "unknown option '--bogus'"],
      ['an unknown command', () => ['frobnicate'], "unknown command 'frobnicate'"],
      ['no command', () => [], 'missing command; one of: customers, start'],
      ['customers without a subcommand', () => ['customers'], 'missing command; one of: add, list'],
      ['an extra argument', (id) => ['pause', id, 'now'], "too many arguments for 'pause'"],
      ['a missing argument', () => ['resume'], "missing required argument 'id'"],
      [
        'an empty --reason for stop',
        (id) => ['stop', id, '--reason', ''],
        '--reason must be 1-500 characters, not blank',
      ],
    ];

    it.each(cases)('%s', async (_what, args, message) => {
      const before = await snapshot(healthy);
      const result = await archiver(args(healthy));
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(message);
      // The problem alone, with a pointer to the help rather than the help itself.
      const lines = result.stderr.trim().split('\n');
      expect(lines.length, result.stderr).toBeLessThanOrEqual(2);
      if (lines[0]?.startsWith('error:')) expect(lines[1]).toMatch(/^\(see: archiver[\w -]* --help\)$/);
      expect(await snapshot(healthy)).toEqual(before);
    });
  });
});
