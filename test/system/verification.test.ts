// Reconciliation against the customer's Dropbox: a verification finds the files deleted or altered
// behind Archiver's back, re-queues their items (whose re-upload overwrites the altered ones),
// counts files Archiver never wrote without touching them, and resumes a listing from its cursor.
//
// The 10,000 archived files are seeded through the emulator's in-process API (putFile) with their
// rows marked archived with the matching content hashes, since uploading them through the pipeline
// would take minutes on the shared machine; the 20 re-archived items go through the real pipeline.
import { verifyAuditChain } from '../../db/audit.js';
import { describe, expect, it } from 'vitest';
import { dropboxContentHash } from '../../activities/dropbox/content-hash.js';
import { remotePathFor } from '../../activities/paths.js';
import { insertPendingItems, type ItemKind, type NewItem } from '../../db/items.js';
import type { Db } from '../../db/pool.js';
import { syntheticUrl } from '../../dev/media-server.js';
import { verifyArchive } from '../../workflows/index.js';
import { verifyWorkflowIdFor } from '../../workflows/names.js';
import { startArchiving, statusWhen } from '../support/harness.js';
import { expectedContent, insertItems } from '../support/items.js';
import { uniqueName } from '../support/stack.js';
import { useArchiverStack } from '../support/archiver-stack.js';

const TOKEN = 'token-verify';
const ACCOUNT = 'dbid:verify';
const RESUME_TOKEN = 'token-verify-resume';
const RESUME_ACCOUNT = 'dbid:verify-resume';
const SESSIONS_TOKEN = 'token-verify-sessions';
const SESSIONS_ACCOUNT = 'dbid:verify-sessions';
const ONCE_TOKEN = 'token-verify-once';
const ONCE_ACCOUNT = 'dbid:verify-once';
const PAGE_SIZE = 500;

const stack = useArchiverStack({
  emulator: {
    accounts: [
      { token: TOKEN, accountId: ACCOUNT },
      { token: RESUME_TOKEN, accountId: RESUME_ACCOUNT },
      { token: SESSIONS_TOKEN, accountId: SESSIONS_ACCOUNT },
      { token: ONCE_TOKEN, accountId: ONCE_ACCOUNT },
    ],
  },
  worker: { verifyPageSize: PAGE_SIZE },
});

interface SeededItem {
  id: string;
  path: string;
  contentHash: string;
}

/**
 * A customer with `count` items already archived: each file placed in the emulator with the
 * item's content, and each row archived with its path and content hash, as the pipeline leaves them.
 */
async function seedArchived(db: Db, customerId: string, token: string, account: string, count: number) {
  await insertItems(db, customerId, token, stack.media.url, 0);
  const occurredAt = new Date('2026-11-02T10:00:00Z');
  for (let start = 0; start < count; start += 1000) {
    const batch: NewItem[] = [];
    for (let n = start; n < Math.min(count, start + 1000); n++) {
      const media = `${customerId}-${n}`;
      const bytes = 100 + (n % 50);
      batch.push({
        kind: 'voicemail',
        occurredAt: new Date(occurredAt.getTime() + n * 1000),
        metadata: { extension: String(100 + (n % 7)), media, bytes },
        sourceUrl: syntheticUrl(stack.media.url, media, bytes),
        body: null,
        sizeBytes: bytes,
      });
    }
    await insertPendingItems(db, customerId, batch);
  }
  const rows = await db.query<{
    id: string;
    kind: ItemKind;
    occurred_at: Date;
    metadata: { extension: string; media: string; bytes: number };
  }>(`SELECT id, kind, occurred_at, metadata FROM archive_items WHERE customer_id = $1 ORDER BY id`, [customerId]);
  const seeded: SeededItem[] = rows.map((r) => {
    const id = String(r.id);
    const path = remotePathFor({
      id,
      kind: r.kind,
      occurredAt: r.occurred_at,
      metadata: r.metadata,
      folderRoot: '/Archiver',
    });
    const content = expectedContent(r.metadata, r.kind);
    stack.emulator.putFile(account, path, content);
    return { id, path, contentHash: dropboxContentHash(content) };
  });
  await db.query(
    `UPDATE archive_items a SET state = 'archived', remote_path = s.path, content_hash = s.content_hash,
            remote_rev = 'seeded', archived_at = now() - interval '1 minute', attempts = 1
       FROM jsonb_to_recordset($2::jsonb) AS s(id bigint, path text, content_hash text)
      WHERE a.customer_id = $1 AND a.id = s.id`,
    [customerId, JSON.stringify(seeded.map((s) => ({ id: s.id, path: s.path, content_hash: s.contentHash })))],
  );
  return seeded;
}

function runVerification(customerId: string) {
  return stack.temporal.client.workflow.execute(verifyArchive, {
    taskQueue: stack.temporal.taskQueue,
    workflowId: verifyWorkflowIdFor(customerId),
    args: [{ customerId }],
  });
}

function hashAt(account: string, path: string): string | undefined {
  return stack.emulator.files(account).find((f) => f.pathLower === path.toLowerCase())?.contentHash;
}

describe('verification against the customer Dropbox', () => {
  it('re-archives 10 deleted and 10 altered files of 10,000, leaves 3 unknown ones alone, and then finds no drift', async () => {
    const customer = uniqueName('verify');
    const db = stack.database.db;
    const seeded = await seedArchived(db, customer, TOKEN, ACCOUNT, 10_000);
    await startArchiving(stack.temporal, customer);
    await statusWhen(stack.temporal.client, customer, (s) => s.state === 'idle');

    const deleted = seeded.slice(100, 110);
    const altered = seeded.slice(5000, 5010);
    for (const item of deleted) expect(stack.emulator.removeFile(ACCOUNT, item.path)).toBe(true);
    for (const item of altered) stack.emulator.putFile(ACCOUNT, item.path, 'edited by the customer');
    const unknown = ['/Archiver/notes.txt', '/Archiver/100/2026-11-02/Voicemail/mine.mp3', '/Archiver/x/y/z.pdf'];
    const unknownHashes = unknown.map((p) => stack.emulator.putFile(ACCOUNT, p, `not Archiver's: ${p}`).contentHash);

    const first = await runVerification(customer);
    expect(first).toMatchObject({
      expected: 10_000,
      present: 9_980,
      missing: 10,
      changed: 10,
      requeued: 20,
      unknown: 3,
      listed: 10_000 - 10 + 3,
    });
    expect(first.pages).toBeGreaterThanOrEqual(20);
    const [run] = await db.query<{ missing: string; changed: string; unknown_sample: string[]; finished_at: Date }>(
      `SELECT missing, changed, unknown_sample, finished_at FROM verification_runs WHERE id = $1`,
      [first.runId],
    );
    expect(run?.finished_at).toBeInstanceOf(Date);
    expect(new Set(run?.unknown_sample)).toEqual(new Set(unknown.map((p) => p.toLowerCase())));

    // The re-queued items are archived again by the customer's workflow, which the verification woke.
    const drained = await statusWhen(
      stack.temporal.client,
      customer,
      (s) => s.totals.archived + s.totals.failed >= 20 && s.state === 'idle',
      30_000,
    );
    expect(drained.totals.failed).toBe(0);
    for (const item of [...deleted, ...altered]) expect(hashAt(ACCOUNT, item.path), item.path).toBe(item.contentHash);
    const reasons = await db.query<{ state: string; requeue_reason: string }>(
      `SELECT state, requeue_reason FROM archive_items WHERE customer_id = $1 AND requeue_reason IS NOT NULL`,
      [customer],
    );
    expect(reasons).toHaveLength(20);
    expect(reasons.every((r) => r.state === 'archived')).toBe(true);
    expect(reasons.filter((r) => r.requeue_reason === 'missing from Dropbox')).toHaveLength(10);
    expect(reasons.filter((r) => r.requeue_reason.startsWith('changed in Dropbox'))).toHaveLength(10);
    // Each re-archive is on the audit trail with its cause, and the chain still verifies.
    const rearchives = await db.query<{ item_id: string; details: { cause: string; verificationRun: string } }>(
      `SELECT item_id, details FROM audit_events WHERE customer_id = $1 AND kind = 'item.rearchive'`,
      [customer],
    );
    expect(rearchives).toHaveLength(20);
    expect(rearchives.every((r) => r.details.verificationRun === first.runId)).toBe(true);
    expect(rearchives.filter((r) => r.details.cause === 'missing from Dropbox')).toHaveLength(10);
    expect(rearchives.filter((r) => r.details.cause.startsWith('changed in Dropbox'))).toHaveLength(10);
    expect(await verifyAuditChain(db, customer)).toMatchObject({ intact: true });
    // Files Archiver never wrote are where they were, unchanged.
    expect(unknown.map((p) => hashAt(ACCOUNT, p))).toEqual(unknownHashes);

    const second = await runVerification(customer);
    expect(second).toMatchObject({
      expected: 10_000,
      present: 10_000,
      missing: 0,
      changed: 0,
      requeued: 0,
      unknown: 3,
    });
  });

  it('overwrites altered files in sessions mode too, where finish_batch_v2 commits the re-queued items', async () => {
    const customer = uniqueName('verify_sessions');
    const db = stack.database.db;
    await insertItems(db, customer, SESSIONS_TOKEN, stack.media.url, 6, { bytes: 300 });
    await startArchiving(stack.temporal, customer, { commitMode: 'sessions' });
    await statusWhen(stack.temporal.client, customer, (s) => s.totals.archived === 6 && s.state === 'idle');
    const original = stack.emulator.files(SESSIONS_ACCOUNT);
    const altered = original.slice(0, 2);
    for (const file of altered) stack.emulator.putFile(SESSIONS_ACCOUNT, file.pathLower, 'edited');

    expect(await runVerification(customer)).toMatchObject({ present: 4, changed: 2, requeued: 2, unknown: 0 });
    const drained = await statusWhen(
      stack.temporal.client,
      customer,
      (s) => s.totals.archived + s.totals.failed >= 8 && s.state === 'idle',
      30_000,
    );
    expect(drained.totals.failed).toBe(0);
    for (const file of altered) expect(hashAt(SESSIONS_ACCOUNT, file.pathLower)).toBe(file.contentHash);
  });

  it('refuses to start while another verification of the customer is going, but not after one was abandoned', async () => {
    const customer = uniqueName('verify_once');
    const db = stack.database.db;
    await seedArchived(db, customer, ONCE_TOKEN, ONCE_ACCOUNT, 3);
    const [going] = await db.query<{ id: string }>(
      `INSERT INTO verification_runs (customer_id) VALUES ($1) RETURNING id`,
      [customer],
    );
    await expect(runVerification(customer)).rejects.toMatchObject({
      cause: { cause: { message: expect.stringContaining(`is running already (run ${going?.id}`) } },
    });
    await db.query(`UPDATE verification_runs SET progressed_at = now() - interval '1 hour' WHERE id = $1`, [going?.id]);
    expect(await runVerification(customer)).toMatchObject({ expected: 3, present: 3 });
  });

  it('resumes a listing that failed mid-way from the cursor in its heartbeat, without listing from the start again', async () => {
    const customer = uniqueName('verify_resume');
    const db = stack.database.db;
    const seeded = await seedArchived(db, customer, RESUME_TOKEN, RESUME_ACCOUNT, 2_000);
    stack.emulator.removeFile(RESUME_ACCOUNT, (seeded[1500] as SeededItem).path);
    // The first list_folder/continue fails; the activity's retry must go on from that page.
    stack.emulator.queueFaults(RESUME_ACCOUNT, [{ route: 'files/list_folder/continue', fault: 503 }]);

    // The customer's workflow is not running: the verification still completes.
    const result = await runVerification(customer);
    expect(result).toMatchObject({ expected: 2_000, present: 1_999, missing: 1, requeued: 1, unknown: 0 });
    const requests = stack.emulator.stats().accounts[RESUME_ACCOUNT]?.requests ?? {};
    expect(requests['/2/files/list_folder 200']).toBe(1);
    expect(requests['/2/files/list_folder/continue 503']).toBe(1);
    // 2,000 files and their folders in pages of 500, each continued once, plus the one that failed.
    expect(requests['/2/files/list_folder/continue 200']).toBe(result.pages - 1);
  });
});
