// The audit trail (migration 008): appending to a customer's hash chain, reading it back page by
// page, and the canonical form each row's hash is taken over.

import { createHash } from 'node:crypto';
import type { Db } from './pool.js';

/** The previous hash of a chain's first row. */
export const GENESIS_HASH = '0'.repeat(64);

/** The chain of operator actions that concern no single customer (start --all, rotate-secrets, deploy). */
export const OPERATOR_CHAIN = '*';

/** What happened; open for more kinds (reconciliation's re-archives, say). */
export type AuditKind = 'item.archived' | 'item.failed' | 'operator.action' | (string & {});

/** An event to append: everything but its place in the chain. */
export interface AuditEvent {
  customerId: string;
  kind: AuditKind;
  /** The worker's identity (pid@host) or the operator's name. */
  actor: string;
  itemId?: string | undefined;
  remotePath?: string | undefined;
  contentHash?: string | undefined;
  remoteRev?: string | undefined;
  /** The item's upload attempts, this one included. */
  attempt?: number | undefined;
  /** The CLI command of an operator action. */
  command?: string | undefined;
  /** Strings, numbers, booleans and nulls (and objects or arrays of them); never a secret. */
  details?: Record<string, unknown> | undefined;
}

/** A row of the trail as stored. */
export interface AuditRow {
  id: string;
  customerId: string;
  seq: number;
  kind: string;
  itemId: string | null;
  remotePath: string | null;
  contentHash: string | null;
  remoteRev: string | null;
  attempt: number | null;
  actor: string;
  command: string | null;
  details: Record<string, unknown>;
  recordedAt: Date;
  prevHash: string;
  hash: string;
}

/** JSON with object keys sorted, so equal values serialize to equal text whatever jsonb did to key order. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object')
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(value ?? null);
}

/**
 * A row's hash: SHA-256 (hex) over its fields in a fixed order, times as ISO 8601 in UTC to the
 * millisecond, and the previous row's hash. The id is left out: it only orders rows in the table.
 */
export function auditHash(row: Omit<AuditRow, 'id' | 'hash'>): string {
  const fields = [
    'archiver-audit-v1',
    row.customerId,
    row.seq,
    row.kind,
    row.itemId,
    row.remotePath,
    row.contentHash,
    row.remoteRev,
    row.attempt,
    row.actor,
    row.command,
    row.details,
    row.recordedAt.toISOString(),
    row.prevHash,
  ];
  return createHash('sha256').update(canonicalJson(fields)).digest('hex');
}

/**
 * Locks the customer's chain head (creating it for a first event) until the transaction ends, so
 * appends to one chain take turns.
 */
async function lockAuditHead(tx: Db, customerId: string): Promise<{ seq: number; hash: string }> {
  const [head] = await tx.query<{ seq: string; hash: string }>(
    `INSERT INTO audit_heads AS h (customer_id) VALUES ($1)
     ON CONFLICT (customer_id) DO UPDATE SET seq = h.seq
     RETURNING seq, hash`,
    [customerId],
  );
  if (!head) throw new Error(`no audit head for ${customerId}`);
  return { seq: Number(head.seq), hash: head.hash };
}

/** Inserts chained rows (of one chain, in order) and moves the chain's head to the last, in one statement. */
async function insertAuditRows(tx: Db, rows: Array<Omit<AuditRow, 'id'>>): Promise<void> {
  await tx.query(
    `WITH added AS (
       INSERT INTO audit_events (customer_id, seq, kind, item_id, remote_path, content_hash, remote_rev, attempt,
                                 actor, command, details, recorded_at, prev_hash, hash)
       SELECT r.customer_id, r.seq, r.kind, r.item_id, r.remote_path, r.content_hash, r.remote_rev, r.attempt,
              r.actor, r.command, r.details, r.recorded_at, r.prev_hash, r.hash
         FROM jsonb_to_recordset($1::jsonb) AS r(customer_id text, seq bigint, kind text, item_id bigint,
              remote_path text, content_hash text, remote_rev text, attempt integer, actor text, command text,
              details jsonb, recorded_at timestamptz, prev_hash text, hash text)
       RETURNING customer_id, seq, hash)
     UPDATE audit_heads h SET seq = last.seq, hash = last.hash
       FROM (SELECT customer_id, seq, hash FROM added ORDER BY seq DESC LIMIT 1) AS last
      WHERE h.customer_id = last.customer_id`,
    [
      JSON.stringify(
        rows.map((row) => ({
          customer_id: row.customerId,
          seq: row.seq,
          kind: row.kind,
          item_id: row.itemId,
          remote_path: row.remotePath,
          content_hash: row.contentHash,
          remote_rev: row.remoteRev,
          attempt: row.attempt,
          actor: row.actor,
          command: row.command,
          details: row.details,
          recorded_at: row.recordedAt.toISOString(),
          prev_hash: row.prevHash,
          hash: row.hash,
        })),
      ),
    ],
  );
}

/**
 * Appends an event to its customer's chain. Call it inside the transaction that makes the change
 * it records, so the change and its record commit together or not at all.
 */
export async function appendAuditEvent(tx: Db, event: AuditEvent): Promise<AuditRow> {
  const [row] = await appendAuditEvents(tx, [event]);
  if (!row) throw new Error(`no audit row appended for ${event.customerId}`);
  return row;
}

/**
 * Appends events to their customers' chains, in order, with one lock and one insert per chain
 * (chains in customer order, so two such transactions cannot deadlock). As appendAuditEvent, call
 * it inside the transaction that makes the changes.
 * @returns the rows appended, chain by chain
 */
export async function appendAuditEvents(tx: Db, events: AuditEvent[]): Promise<AuditRow[]> {
  const chains = new Map<string, AuditEvent[]>();
  for (const e of events) chains.set(e.customerId, [...(chains.get(e.customerId) ?? []), e]);
  const appended: AuditRow[] = [];
  for (const customerId of [...chains.keys()].sort()) {
    let head = await lockAuditHead(tx, customerId);
    const rows: Array<Omit<AuditRow, 'id'>> = [];
    for (const event of chains.get(customerId) ?? []) {
      // Stored to the millisecond, so the time hashed is the time read back.
      const unhashed: Omit<AuditRow, 'id' | 'hash'> = {
        customerId,
        seq: head.seq + 1,
        kind: event.kind,
        itemId: event.itemId ?? null,
        remotePath: event.remotePath ?? null,
        contentHash: event.contentHash ?? null,
        remoteRev: event.remoteRev ?? null,
        attempt: event.attempt ?? null,
        actor: event.actor,
        command: event.command ?? null,
        details: JSON.parse(JSON.stringify(event.details ?? {})) as Record<string, unknown>,
        recordedAt: new Date(),
        prevHash: head.hash,
      };
      const row = { ...unhashed, hash: auditHash(unhashed) };
      rows.push(row);
      head = { seq: row.seq, hash: row.hash };
    }
    await insertAuditRows(tx, rows);
    appended.push(...rows.map((r) => ({ id: '', ...r })));
  }
  return appended;
}

/** Appends an event in a transaction of its own: for changes outside Postgres, such as a Temporal signal. */
export function recordAuditEvent(db: Db, event: AuditEvent): Promise<AuditRow> {
  return db.transaction((tx) => appendAuditEvent(tx, event));
}

interface StoredRow {
  id: string;
  customer_id: string;
  seq: string;
  kind: string;
  item_id: string | null;
  remote_path: string | null;
  content_hash: string | null;
  remote_rev: string | null;
  attempt: number | null;
  actor: string;
  command: string | null;
  details: Record<string, unknown>;
  recorded_at: Date;
  prev_hash: string;
  hash: string;
}

function fromStored(r: StoredRow): AuditRow {
  return {
    id: String(r.id),
    customerId: r.customer_id,
    seq: Number(r.seq),
    kind: r.kind,
    itemId: r.item_id === null ? null : String(r.item_id),
    remotePath: r.remote_path,
    contentHash: r.content_hash,
    remoteRev: r.remote_rev,
    attempt: r.attempt,
    actor: r.actor,
    command: r.command,
    details: r.details,
    recordedAt: r.recorded_at,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

/** Which rows of a chain to read: a time window, half-open [since, until). */
export interface AuditWindow {
  since?: Date | undefined;
  until?: Date | undefined;
}

/** Up to `limit` rows of the customer's chain after `afterSeq`, in chain order, within the window. */
export async function auditEventsAfter(
  db: Db,
  customerId: string,
  afterSeq: number,
  limit: number,
  window: AuditWindow = {},
): Promise<AuditRow[]> {
  const rows = await db.query<StoredRow>(
    `SELECT id, customer_id, seq, kind, item_id, remote_path, content_hash, remote_rev, attempt, actor, command,
            details, recorded_at, prev_hash, hash
       FROM audit_events
      WHERE customer_id = $1 AND seq > $2
        AND ($4::timestamptz IS NULL OR recorded_at >= $4)
        AND ($5::timestamptz IS NULL OR recorded_at < $5)
      ORDER BY seq
      LIMIT $3`,
    [customerId, afterSeq, limit, window.since ?? null, window.until ?? null],
  );
  return rows.map(fromStored);
}

/** Every row of the customer's chain in order, a page at a time, so memory does not grow with the trail. */
export async function* auditEvents(
  db: Db,
  customerId: string,
  window: AuditWindow = {},
  pageSize = 500,
): AsyncGenerator<AuditRow> {
  let after = 0;
  for (;;) {
    const page = await auditEventsAfter(db, customerId, after, pageSize, window);
    yield* page;
    const last = page.at(-1);
    if (!last || page.length < pageSize) return;
    after = last.seq;
  }
}

/** The customer's chain head: the seq and hash its last row should have; undefined if it has no events. */
export async function auditHead(db: Db, customerId: string): Promise<{ seq: number; hash: string } | undefined> {
  const [head] = await db.query<{ seq: string; hash: string }>(
    'SELECT seq, hash FROM audit_heads WHERE customer_id = $1',
    [customerId],
  );
  return head ? { seq: Number(head.seq), hash: head.hash } : undefined;
}

/** Where a chain first breaks, or that it holds. */
export type ChainCheck =
  | { intact: true; rows: number }
  | { intact: false; rows: number; seq: number; id: string | undefined; problem: string };

/**
 * Walks the customer's chain from its first row, recomputing each hash and checking each row
 * links to the one before; a deleted row shows as a gap or a broken link, a deleted last row as a
 * head that points past the end.
 */
export async function verifyAuditChain(db: Db, customerId: string): Promise<ChainCheck> {
  let expectedSeq = 1;
  let prevHash = GENESIS_HASH;
  let rows = 0;
  const broken = (row: AuditRow, problem: string): ChainCheck => ({
    intact: false,
    rows,
    seq: row.seq,
    id: row.id,
    problem,
  });
  for await (const row of auditEvents(db, customerId)) {
    if (row.seq !== expectedSeq)
      return broken(row, `row ${expectedSeq} is missing (the next row found is ${row.seq}): deleted`);
    if (row.prevHash !== prevHash)
      return broken(row, `its previous hash does not match row ${row.seq - 1}: that row was changed or deleted`);
    if (auditHash(row) !== row.hash) return broken(row, 'its hash does not match its fields: the row was changed');
    rows++;
    prevHash = row.hash;
    expectedSeq++;
  }
  const head = await auditHead(db, customerId);
  const headSeq = head?.seq ?? 0;
  if (headSeq !== rows || (head !== undefined && head.hash !== prevHash))
    return {
      intact: false,
      rows,
      seq: rows + 1,
      id: undefined,
      problem: `the chain's head says it has ${headSeq} rows ending in ${head?.hash.slice(0, 12) ?? '-'}, but ${rows} were found: its last rows were deleted`,
    };
  return { intact: true, rows };
}
