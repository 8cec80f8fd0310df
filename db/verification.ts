// The SQL of verification runs: reconciling a customer's archive_items with the files in its
// Dropbox, one listed page at a time, so memory never grows with the folder.

import { appendAuditEvent } from './audit.js';
import type { Db } from './pool.js';

/** One file of a listed page: its lower-cased path and the content hash Dropbox reports. */
export interface ListedFile {
  pathLower: string;
  contentHash: string | null;
}

/** What a finished verification run found. */
export interface VerificationCounts {
  /** Archived items the run expected to find: those archived before it started. */
  expected: number;
  /** Of those, files found with the content hash Archiver stored. */
  present: number;
  missing: number;
  /** Found, but with another content hash. */
  changed: number;
  /** Missing and changed items put back to pending, and those whose metadata sidecar was missing. */
  requeued: number;
  /** Files in the folder no item accounts for; never touched. */
  unknown: number;
  unknownSample: string[];
  /** The earliest archive time among the missing and changed items. */
  oldestDiscrepancyAt: Date | null;
}

export interface VerificationRun extends VerificationCounts {
  id: string;
  customerId: string;
  startedAt: Date;
  finishedAt: Date | null;
  /** Files listed so far. */
  listed: number;
}

type RunRow = {
  id: string;
  customer_id: string;
  started_at: Date;
  finished_at: Date | null;
  listed: string;
  expected: string | null;
  present: string | null;
  missing: string | null;
  changed: string | null;
  requeued: string | null;
  unknown: string;
  unknown_sample: string[];
  oldest_discrepancy_at: Date | null;
};

const RUN_COLUMNS = `id, customer_id, started_at, finished_at, listed, expected, present, missing, changed, requeued,
  unknown, unknown_sample, oldest_discrepancy_at`;

const toRun = (r: RunRow): VerificationRun => ({
  id: String(r.id),
  customerId: r.customer_id,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  listed: Number(r.listed),
  expected: Number(r.expected ?? 0),
  present: Number(r.present ?? 0),
  missing: Number(r.missing ?? 0),
  changed: Number(r.changed ?? 0),
  requeued: Number(r.requeued ?? 0),
  unknown: Number(r.unknown),
  unknownSample: r.unknown_sample,
  oldestDiscrepancyAt: r.oldest_discrepancy_at,
});

/**
 * Opens a verification run of the customer, unless another one is still going (unfinished, and it
 * listed a page within `abandonedAfterMs`): two runs at once would each take the other's marks for
 * missing files. Its start time bounds which archived items it expects.
 */
export async function startVerificationRun(
  db: Db,
  customerId: string,
  abandonedAfterMs: number,
): Promise<{ started: VerificationRun } | { running: VerificationRun }> {
  return db.transaction(async (tx) => {
    // Serializes starts of one customer's runs, so two cannot both see none running.
    await tx.query(`SELECT pg_advisory_xact_lock(hashtext('verification_runs:' || $1))`, [customerId]);
    const [running] = await tx.query<RunRow>(
      `SELECT ${RUN_COLUMNS} FROM verification_runs
        WHERE customer_id = $1 AND finished_at IS NULL AND progressed_at > now() - $2 * interval '1 millisecond'
        ORDER BY id DESC LIMIT 1`,
      [customerId, abandonedAfterMs],
    );
    if (running) return { running: toRun(running) };
    const [row] = await tx.query<RunRow>(
      `INSERT INTO verification_runs (customer_id) VALUES ($1) RETURNING ${RUN_COLUMNS}`,
      [customerId],
    );
    if (!row) throw new Error(`no verification run was created for ${customerId}`);
    return { started: toRun(row) };
  });
}

export async function verificationRun(db: Db, runId: string): Promise<VerificationRun | undefined> {
  const [row] = await db.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM verification_runs WHERE id = $1`, [runId]);
  return row ? toRun(row) : undefined;
}

/** The customer's newest run, finished or not. */
export async function latestVerificationRun(db: Db, customerId: string): Promise<VerificationRun | undefined> {
  const [row] = await db.query<RunRow>(
    `SELECT ${RUN_COLUMNS} FROM verification_runs WHERE customer_id = $1 ORDER BY id DESC LIMIT 1`,
    [customerId],
  );
  return row ? toRun(row) : undefined;
}

/** Each customer's last finished run, by customer id. */
export async function lastFinishedVerifications(db: Db): Promise<Map<string, VerificationRun>> {
  const rows = await db.query<RunRow>(
    `SELECT DISTINCT ON (customer_id) ${RUN_COLUMNS} FROM verification_runs
      WHERE finished_at IS NOT NULL ORDER BY customer_id, id DESC`,
  );
  return new Map(rows.map((r) => [r.customer_id, toRun(r)]));
}

/**
 * Marks the customer's items whose files a listed page holds as seen by the run, with the hash
 * listed, and those whose metadata sidecars it holds as having their sidecar seen, in one
 * statement (one UPDATE, as one statement may change a row only once); records the run's progress.
 * @returns the page's paths that are neither an item's file nor its sidecar
 */
export async function matchListedPage(
  db: Db,
  customerId: string,
  runId: string,
  files: readonly ListedFile[],
  listedSoFar: number,
): Promise<string[]> {
  const page = JSON.stringify(files.map((f) => ({ path_lower: f.pathLower, content_hash: f.contentHash })));
  const rows = await db.query<{ path_lower: string }>(
    `WITH page AS (
       SELECT p.path_lower, p.content_hash FROM jsonb_to_recordset($3::jsonb) AS p(path_lower text, content_hash text)),
     hits AS (
       SELECT a.id, page.path_lower, page.content_hash, false AS is_sidecar
         FROM page JOIN archive_items a
           ON a.customer_id = $1 AND a.remote_path IS NOT NULL AND lower(a.remote_path) = page.path_lower
       UNION ALL
       SELECT a.id, page.path_lower, NULL, true
         FROM page JOIN archive_items a
           ON a.customer_id = $1 AND a.sidecar_path IS NOT NULL AND lower(a.sidecar_path) = page.path_lower),
     matched AS (
       UPDATE archive_items a
          SET verified_run = CASE WHEN h.file THEN $2 ELSE a.verified_run END,
              verified_hash = CASE WHEN h.file THEN h.content_hash ELSE a.verified_hash END,
              sidecar_verified_run = CASE WHEN h.sidecar THEN $2 ELSE a.sidecar_verified_run END
         FROM (SELECT id, bool_or(NOT is_sidecar) AS file, bool_or(is_sidecar) AS sidecar,
                      max(content_hash) FILTER (WHERE NOT is_sidecar) AS content_hash
                 FROM hits GROUP BY id) h
        WHERE a.id = h.id
       RETURNING a.id),
     progress AS (
       UPDATE verification_runs SET listed = $4, progressed_at = now() WHERE id = $2)
     SELECT page.path_lower FROM page
      WHERE NOT EXISTS (SELECT 1 FROM hits h WHERE h.path_lower = page.path_lower)`,
    [customerId, runId, page, listedSoFar],
  );
  return rows.map((r) => r.path_lower);
}

/**
 * Ends a run once its listing is complete: every item archived before the run started whose file
 * the run did not see, or saw with another content hash, or whose metadata sidecar it did not see,
 * goes back to pending with its reason;
 * the counts are stored on the run. A run already finished keeps (and returns) its counts, so a
 * retried finish re-queues nothing twice.
 */
export async function finishVerificationRun(
  db: Db,
  customerId: string,
  runId: string,
  unknown: { count: number; sample: readonly string[] },
  actor: string,
): Promise<VerificationRun> {
  return db.transaction(async (tx) => {
    const [run] = await tx.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM verification_runs WHERE id = $1 FOR UPDATE`, [
      runId,
    ]);
    if (!run) throw new Error(`verification run ${runId} does not exist`);
    if (run.finished_at !== null) return toRun(run);
    const rows = await tx.query<{
      id: string;
      remote_path: string | null;
      content_hash: string | null;
      verified_hash: string | null;
      requeue_reason: string;
      was_missing: boolean;
      was_changed: boolean;
      archived_at: Date;
    }>(
      `UPDATE archive_items
          SET state = 'pending', requeued_at = now(), next_attempt_at = NULL, failed_attempts = 0,
              first_failed_at = NULL, last_error = NULL, last_error_at = NULL,
              requeue_reason = CASE
                WHEN verified_run IS DISTINCT FROM $2 THEN 'missing from Dropbox'
                WHEN verified_hash IS DISTINCT FROM content_hash
                THEN 'changed in Dropbox: content hash ' || coalesce(verified_hash, 'none') || ', archived ' || content_hash
                ELSE 'sidecar missing' END
        WHERE customer_id = $1 AND state = 'archived' AND archived_at < $3
          AND (verified_run IS DISTINCT FROM $2 OR verified_hash IS DISTINCT FROM content_hash
               OR (sidecar_path IS NOT NULL AND sidecar_verified_run IS DISTINCT FROM $2))
       RETURNING id, remote_path, content_hash, verified_hash, requeue_reason,
                 (verified_run IS DISTINCT FROM $2) AS was_missing,
                 (verified_run = $2 AND verified_hash IS DISTINCT FROM content_hash) AS was_changed, archived_at`,
      [customerId, runId, run.started_at],
    );
    const [counted] = await tx.query<{ present: string }>(
      `SELECT count(*) AS present FROM archive_items
        WHERE customer_id = $1 AND state = 'archived' AND archived_at < $3
          AND verified_run = $2 AND verified_hash = content_hash`,
      [customerId, runId, run.started_at],
    );
    // Every re-archive is on the audit trail with its cause, in the transaction that re-queues it.
    for (const item of rows) {
      await appendAuditEvent(tx, {
        customerId,
        kind: 'item.rearchive',
        actor,
        itemId: String(item.id),
        remotePath: item.remote_path ?? undefined,
        contentHash: item.content_hash ?? undefined,
        details: {
          cause: item.requeue_reason,
          verificationRun: runId,
          ...(item.was_changed ? { foundHash: item.verified_hash } : {}),
        },
      });
    }
    const missing = rows.filter((r) => r.was_missing).length;
    const changed = rows.filter((r) => r.was_changed).length;
    // Counted after the re-queue: an item whose file is in place but whose sidecar is not is present too.
    const present = Number(counted?.present ?? 0) + rows.length - missing - changed;
    // Also the items whose file is in place but whose metadata sidecar is not (reason `sidecar missing`).
    const requeued = rows.length;
    const oldest = rows
      .filter((r) => r.was_missing || r.was_changed)
      .reduce<Date | null>((min, r) => (min === null || r.archived_at < min ? r.archived_at : min), null);
    const [finished] = await tx.query<RunRow>(
      `UPDATE verification_runs
          SET finished_at = now(), expected = $2, present = $3, missing = $4, changed = $5, requeued = $6,
              unknown = $7, unknown_sample = $8, oldest_discrepancy_at = $9
        WHERE id = $1
       RETURNING ${RUN_COLUMNS}`,
      [runId, present + missing + changed, present, missing, changed, requeued, unknown.count, unknown.sample, oldest],
    );
    if (!finished) throw new Error(`verification run ${runId} does not exist`);
    return toRun(finished);
  });
}

/** Items a verification re-queued that are not archived again yet, for `archiver verify`. */
export async function requeuedWaiting(
  db: Db,
  customerId: string,
  limit: number,
): Promise<{ id: string; state: string; reason: string }[]> {
  const rows = await db.query<{ id: string; state: string; requeue_reason: string }>(
    `SELECT id, state, requeue_reason FROM archive_items
      WHERE customer_id = $1 AND requeue_reason IS NOT NULL AND state <> 'archived'
      ORDER BY id LIMIT $2`,
    [customerId, limit],
  );
  return rows.map((r) => ({ id: String(r.id), state: r.state, reason: r.requeue_reason }));
}
