// Day manifests: once a day is over (in the customer's time zone, UTC by default) and none of its
// items waits, the customer's Dropbox gets <folder root>/manifests/<day>.csv listing every item
// archived that day; a late item rewrites it, a customer with manifests off gets none, verification
// does not count them as unknown, and a customer's zone decides both its day folders and manifests.
import { describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import { remotePathFor } from '../../activities/paths.js';
import { setTimeZone } from '../../db/customers.js';
import { setDayManifests } from '../../db/manifests.js';
import { insertPendingItems, type ItemKind, type NewItem } from '../../db/items.js';
import { syntheticUrl } from '../../dev/media-server.js';
import { verifyArchive, writeDayManifests } from '../../workflows/index.js';
import { itemsAvailableSignal } from '../../workflows/messages.js';
import { manifestsWorkflowIdFor, verifyWorkflowIdFor, workflowIdFor } from '../../workflows/names.js';
import { runActivity } from '../support/activity-env.js';
import { startArchiving, statusWhen } from '../support/harness.js';
import { insertItems } from '../support/items.js';
import { testKeyring } from '../support/secret-keys.js';
import { uniqueName } from '../support/stack.js';
import { useArchiverStack } from '../support/archiver-stack.js';

const DAY_MS = 24 * 3600_000;
/** Each test's customer has a Dropbox of its own, so one test's files never show in another's listing. */
const ACCOUNTS = ['late', 'pending', 'off', 'zone'] as const;
type Account = (typeof ACCOUNTS)[number];
const tokenOf = (account: Account) => `token-manifests-${account}`;
const accountIdOf = (account: Account) => `dbid:manifests-${account}`;

const stack = useArchiverStack({
  emulator: { accounts: ACCOUNTS.map((a) => ({ token: tokenOf(a), accountId: accountIdOf(a) })) },
});

/** `YYYY-MM-DD` of the UTC day `daysAgo` before today, and a time on it. */
function dayAgo(daysAgo: number, time: string): { day: string; at: Date } {
  const day = new Date(Date.now() - daysAgo * DAY_MS).toISOString().slice(0, 10);
  return { day, at: new Date(`${day}T${time}Z`) };
}

/** Adds the customer and pending items that occurred at these times. */
async function addItems(account: Account, customerId: string, items: { at: Date; kind?: ItemKind }[]): Promise<void> {
  await insertItems(stack.database.db, customerId, tokenOf(account), stack.media.url, 0);
  const batch: NewItem[] = items.map(({ at, kind = 'voicemail' }, n) => {
    const media = `${customerId}-${at.getTime()}-${n}`;
    const bytes = 200 + n;
    const sms = kind === 'sms';
    return {
      kind,
      occurredAt: at,
      metadata: { extension: String(100 + (n % 2)), media, bytes, from: 'alice, "the caller"' },
      sourceUrl: sms ? null : syntheticUrl(stack.media.url, media, bytes),
      body: sms ? `sms ${media}` : null,
      sizeBytes: sms ? null : bytes,
    };
  });
  await insertPendingItems(stack.database.db, customerId, batch);
}

/** Marks the customer's pending items archived as the pipeline would (path, hash, size), without uploading. */
async function markArchivedInPlace(customerId: string): Promise<void> {
  const rows = await stack.database.db.query<{
    id: string;
    kind: ItemKind;
    occurred_at: Date;
    metadata: Record<string, unknown>;
  }>(`SELECT id, kind, occurred_at, metadata FROM archive_items WHERE customer_id = $1 AND state = 'pending'`, [
    customerId,
  ]);
  for (const r of rows) {
    const path = remotePathFor({
      id: String(r.id),
      kind: r.kind,
      occurredAt: r.occurred_at,
      metadata: r.metadata,
      folderRoot: '/Archiver',
    });
    await stack.database.db.query(
      `UPDATE archive_items SET state = 'archived', remote_path = $2, content_hash = $3, remote_rev = 'seeded',
              size_bytes = 10, archived_at = now() WHERE id = $1`,
      [r.id, path, `hash-${r.id}`],
    );
  }
}

function manifestActivities(now?: () => Date) {
  return createActivities({ db: stack.database.db, keyring: testKeyring(), dropboxApiBase: stack.emulator.url, now });
}

function manifestFiles(account: Account): string[] {
  return stack.emulator
    .files(accountIdOf(account))
    .map((f) => f.pathDisplay)
    .filter((p) => p.startsWith('/Archiver/manifests/'));
}

/** A file's content, downloaded from the emulator as a client would. */
async function download(account: Account, path: string): Promise<string> {
  const answer = await fetch(`${stack.emulator.url}/2/files/download`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${tokenOf(account)}`, 'Dropbox-API-Arg': JSON.stringify({ path }) },
  });
  expect(answer.status, path).toBe(200);
  return answer.text();
}

/** The manifest lines expected for the day, from the files the emulator holds at the items' paths. */
async function expectedLines(account: Account, customerId: string, day: string, timeZone = 'UTC'): Promise<string[]> {
  const rows = await stack.database.db.query<{ remote_path: string; kind: string }>(
    `SELECT remote_path, kind FROM archive_items
      WHERE customer_id = $1 AND state = 'archived' AND (occurred_at AT TIME ZONE $3)::date = $2::date
      ORDER BY occurred_at, id`,
    [customerId, day, timeZone],
  );
  const files = stack.emulator.files(accountIdOf(account));
  return rows.map((r) => {
    const file = files.find((f) => f.pathLower === r.remote_path.toLowerCase());
    if (!file) throw new Error(`no file at ${r.remote_path}`);
    const relative = r.remote_path.slice('/Archiver/'.length);
    const field = /[",]/.test(relative) ? `"${relative.replaceAll('"', '""')}"` : relative;
    return `${field},${r.kind},${file.size},${file.contentHash}`;
  });
}

function runVerification(customerId: string) {
  return stack.temporal.client.workflow.execute(verifyArchive, {
    taskQueue: stack.temporal.taskQueue,
    workflowId: verifyWorkflowIdFor(customerId),
    args: [{ customerId }],
  });
}

describe('day manifests', () => {
  it('writes one for each past day after verification, with every item, and none for today; a late item rewrites its day', async () => {
    const customer = uniqueName('manifests');
    const first = dayAgo(3, '10:00:00');
    const second = dayAgo(2, '23:59:30');
    const today = dayAgo(0, '00:00:00');
    await addItems('late', customer, [
      { at: first.at },
      { at: new Date(first.at.getTime() + 60_000), kind: 'sms' },
      { at: new Date(first.at.getTime() + 120_000), kind: 'fax' },
      { at: second.at },
      { at: new Date(second.at.getTime() + 20_000), kind: 'call_recording' },
      { at: new Date() },
      { at: new Date() },
    ]);
    await startArchiving(stack.temporal, customer);
    await statusWhen(stack.temporal.client, customer, (s) => s.totals.archived === 7 && s.state === 'idle');

    const verified = await runVerification(customer);
    expect(verified).toMatchObject({ unknown: 0, manifestsWritten: 2 });
    expect(manifestFiles('late').sort()).toEqual([
      `/Archiver/manifests/${first.day}.csv`,
      `/Archiver/manifests/${second.day}.csv`,
    ]);
    expect(manifestFiles('late')).not.toContain(`/Archiver/manifests/${today.day}.csv`);
    for (const [{ day }, count] of [
      [first, 3],
      [second, 2],
    ] as const) {
      const lines = (await download('late', `/Archiver/manifests/${day}.csv`)).trimEnd().split('\n');
      expect(lines[0]).toBe('path,kind,size,content_hash');
      expect(lines.slice(1, -1)).toEqual(await expectedLines('late', customer, day));
      expect(lines.slice(1, -1)).toHaveLength(count);
      expect(lines.at(-1)).toBe(`# items,${count}`);
    }
    const [stored] = await stack.database.db.query<{ content_hash: string; item_count: string; dirty: boolean }>(
      `SELECT content_hash, item_count, dirty FROM manifests WHERE customer_id = $1 AND day = $2::date`,
      [customer, first.day],
    );
    const file = stack.emulator
      .files(accountIdOf('late'))
      .find((f) => f.pathDisplay === `/Archiver/manifests/${first.day}.csv`);
    expect(stored).toEqual({ content_hash: file?.contentHash, item_count: '3', dirty: false });

    // The manifests are listed now, and are Archiver's own: not unknown.
    const again = await runVerification(customer);
    expect(again).toMatchObject({ listed: 9, present: 7, unknown: 0, manifestsWritten: 0 });

    // A late item of the first day: archived by the running customer, then its manifest is written again.
    await addItems('late', customer, [{ at: new Date(first.at.getTime() + 30_000), kind: 'voicemail' }]);
    // The notifier, which would wake the customer in production, is not part of this stack.
    await stack.temporal.client.workflow.getHandle(workflowIdFor(customer)).signal(itemsAvailableSignal);
    await statusWhen(stack.temporal.client, customer, (s) => s.totals.archived === 8 && s.state === 'idle');
    const rewritten = await stack.temporal.client.workflow.execute(writeDayManifests, {
      taskQueue: stack.temporal.taskQueue,
      workflowId: manifestsWorkflowIdFor(customer),
      args: [{ customerId: customer }],
    });
    expect(rewritten.written.map((w) => [w.day, w.items])).toEqual([[first.day, 4]]);
    const lines = (await download('late', `/Archiver/manifests/${first.day}.csv`)).trimEnd().split('\n');
    expect(lines.slice(1, -1)).toEqual(await expectedLines('late', customer, first.day));
    expect(lines.at(-1)).toBe('# items,4');
    const manifest = stack.emulator
      .files(accountIdOf('late'))
      .find((f) => f.pathDisplay === `/Archiver/manifests/${first.day}.csv`);
    expect(manifest?.writes).toBe(2);
  });

  it('writes no manifest for a day while one of its items is pending, and writes it once none is', async () => {
    const customer = uniqueName('manifests_pending');
    const first = dayAgo(5, '08:00:00');
    const second = dayAgo(4, '08:00:00');
    await addItems('pending', customer, [{ at: first.at }, { at: second.at }]);
    await markArchivedInPlace(customer);
    await addItems('pending', customer, [{ at: new Date(first.at.getTime() + 1000) }]);
    const activities = manifestActivities();

    const before = await runActivity(activities.writeManifests, customer);
    expect(before.written.map((w) => w.day)).toEqual([second.day]);
    expect(manifestFiles('pending')).not.toContain(`/Archiver/manifests/${first.day}.csv`);

    await markArchivedInPlace(customer);
    const after = await runActivity(activities.writeManifests, customer);
    expect(after.written.map((w) => [w.day, w.items])).toEqual([[first.day, 2]]);
    expect(await runActivity(activities.writeManifests, customer)).toEqual({ enabled: true, written: [] });
  });

  it('writes none for a customer with manifests off', async () => {
    const customer = uniqueName('manifests_off');
    const day = dayAgo(6, '12:00:00');
    await addItems('off', customer, [{ at: day.at }]);
    await markArchivedInPlace(customer);
    expect(await setDayManifests(stack.database.db, customer, false)).toBe(true);
    const activities = manifestActivities();
    expect(await runActivity(activities.writeManifests, customer)).toEqual({ enabled: false, written: [] });
    expect(manifestFiles('off')).not.toContain(`/Archiver/manifests/${day.day}.csv`);
    // Turned on again, the days it skipped are still due.
    await setDayManifests(stack.database.db, customer, true);
    const on = await runActivity(activities.writeManifests, customer);
    expect(on.written.map((w) => w.day)).toEqual([day.day]);
  });

  it("groups items by the customer's time zone: a day's folder and manifest hold what occurred on it there, written once it is over there", async () => {
    const customer = uniqueName('manifests_zone');
    // In Auckland (NZDT, UTC+13) 10:00Z is 23:00 on 2026-03-01, and 23:30Z is 12:30 on 2026-03-02.
    const early = new Date('2026-03-01T10:00:00Z');
    const late = new Date('2026-03-01T23:30:00Z');
    await addItems('zone', customer, [{ at: early }, { at: late }]);
    expect(await setTimeZone(stack.database.db, customer, 'Pacific/Auckland')).toBe('set');
    await startArchiving(stack.temporal, customer);
    await statusWhen(stack.temporal.client, customer, (s) => s.totals.archived === 2 && s.state === 'idle');

    // The day folders are the local days, and so are the manifest days the trigger marked.
    const paths = await stack.database.db.query<{ remote_path: string }>(
      `SELECT remote_path FROM archive_items WHERE customer_id = $1 ORDER BY occurred_at`,
      [customer],
    );
    expect(paths.map((p) => p.remote_path)).toEqual([
      expect.stringMatching(/^\/Archiver\/100\/2026-03-01\/Voicemail\/230000_/),
      expect.stringMatching(/^\/Archiver\/101\/2026-03-02\/Voicemail\/123000_/),
    ]);
    const days = await stack.database.db.query<{ day: string }>(
      `SELECT day::text AS day FROM manifests WHERE customer_id = $1 ORDER BY day`,
      [customer],
    );
    expect(days.map((d) => d.day)).toEqual(['2026-03-01', '2026-03-02']);

    // 05:00Z: the UTC day of both items is over, but in Auckland it is 18:00 on 2026-03-02.
    const morning = await runActivity(
      manifestActivities(() => new Date('2026-03-02T05:00:00Z')).writeManifests,
      customer,
    );
    expect(morning.written.map((w) => [w.day, w.items])).toEqual([['2026-03-01', 1]]);
    expect(manifestFiles('zone')).toEqual(['/Archiver/manifests/2026-03-01.csv']);
    const lastSecond = await runActivity(
      manifestActivities(() => new Date('2026-03-02T10:59:59Z')).writeManifests,
      customer,
    );
    expect(lastSecond.written).toEqual([]);

    // 11:00Z is midnight in Auckland: 2026-03-02 is over there.
    const midnight = await runActivity(
      manifestActivities(() => new Date('2026-03-02T11:00:00Z')).writeManifests,
      customer,
    );
    expect(midnight.written.map((w) => [w.day, w.items])).toEqual([['2026-03-02', 1]]);
    for (const day of ['2026-03-01', '2026-03-02']) {
      const lines = (await download('zone', `/Archiver/manifests/${day}.csv`)).trimEnd().split('\n');
      expect(lines.slice(1, -1)).toEqual(await expectedLines('zone', customer, day, 'Pacific/Auckland'));
      expect(lines.slice(1, -1)).toEqual([expect.stringContaining(`/${day}/Voicemail/`)]);
    }

    // Now that items are archived, another zone would move their folders: refused, and nothing changes.
    expect(await setTimeZone(stack.database.db, customer, 'America/Los_Angeles')).toBe('refused');
    expect(await setTimeZone(stack.database.db, customer, 'Pacific/Auckland')).toBe('set');
    const [row] = await stack.database.db.query<{ time_zone: string }>(
      `SELECT time_zone FROM customers WHERE id = $1`,
      [customer],
    );
    expect(row?.time_zone).toBe('Pacific/Auckland');
  });

  it('refuses, in Postgres, a time zone Postgres does not know', async () => {
    const customer = uniqueName('manifests_badzone');
    await addItems('zone', customer, []);
    await expect(setTimeZone(stack.database.db, customer, 'Mars/Olympus')).rejects.toThrow(
      /time zone "Mars\/Olympus" of customer .* is not an IANA time zone this Postgres knows/,
    );
    expect(await setTimeZone(stack.database.db, 'nobody-here', 'Europe/Berlin')).toBe('unknown');
  });
});
