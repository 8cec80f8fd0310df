// Metadata sidecars: each archived call recording, voicemail and fax gets `<same name>.json` next
// to it, written before the item counts as archived, in both upload modes; a verification knows
// them. Against the emulator through the real dropbox SDK, Postgres and the media server.
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { dropboxContentHash } from '../../activities/dropbox/content-hash.js';
import type { SliceOutcome, SliceRequest } from '../../activities/types.js';
import type { ItemKind } from '../../db/items.js';
import { expectedContent, insertItems } from '../support/items.js';
import { uniqueName } from '../support/stack.js';
import { useActivityStack } from '../support/activity-stack.js';

const stack = useActivityStack({ activities: { leaseTtlMs: 60_000 } });

const KINDS: ItemKind[] = ['call_recording', 'voicemail', 'fax', 'sms'];
/** What the telephony sync wrote about the call recording, beyond insertItems' defaults. */
const CALL = { call_id: 'call-7f3a', direction: 'inbound', from: '+15551230000', to: '+15559870000', duration: 42 };

/** A customer with an account and one item of each kind (the recording with full call metadata); leased in one slice. */
async function customerWithItems(sidecars: boolean) {
  const token = uniqueName('tok');
  const customer = uniqueName('c');
  const accountId = stack.emulator.addAccount({ token });
  const ids: Record<string, string> = {};
  for (const kind of KINDS) {
    const [id] = await insertItems(stack.database.db, customer, token, stack.media.url, 1, { kind, sidecars });
    ids[kind] = id as string;
  }
  await stack.database.db.query(`UPDATE archive_items SET metadata = metadata || $2 WHERE id = $1`, [
    ids.call_recording,
    CALL,
  ]);
  const batch = await stack.activities.fetchBatch(customer, KINDS.length);
  const request: SliceRequest = {
    customerId: customer,
    leaseToken: batch.leaseToken,
    concurrency: 1,
    items: batch.items.map((item) => ({ itemId: item.id, startAt: Date.now() })),
  };
  return { customer, accountId, ids, request };
}

interface ItemRow {
  id: string;
  kind: ItemKind;
  state: string;
  remote_path: string | null;
  sidecar_path: string | null;
  content_hash: string | null;
  occurred_at: Date;
  metadata: { media: string; bytes: number; extension: string };
}

async function rows(customer: string): Promise<ItemRow[]> {
  return stack.database.db.query<ItemRow>(
    `SELECT id, kind, state, remote_path, sidecar_path, content_hash, occurred_at, metadata
       FROM archive_items WHERE customer_id = $1 ORDER BY id`,
    [customer],
  );
}

/** The sidecar's path derived from the item's own: its extension replaced by `.json`. */
const besideItem = (path: string) => path.replace(/\.[a-z0-9]+$/, '.json');

function sidecarAt(accountId: string, path: string): Record<string, unknown> | undefined {
  const bytes = stack.emulator.fileContent(accountId, path);
  return bytes && (JSON.parse(bytes.toString('utf8')) as Record<string, unknown>);
}

/** Every non-SMS item is archived with its sidecar next to it, holding the item's fields; SMS has none. */
async function expectSidecars(customer: string, accountId: string, startedAt: Date) {
  const items = await rows(customer);
  expect(items.map((i) => i.state)).toEqual(KINDS.map(() => 'archived'));
  for (const item of items) {
    const path = item.remote_path as string;
    if (item.kind === 'sms') {
      expect(item.sidecar_path).toBeNull();
      expect(sidecarAt(accountId, besideItem(path))).toBeUndefined();
      continue;
    }
    expect(item.sidecar_path).toBe(besideItem(path));
    const sidecar = sidecarAt(accountId, besideItem(path));
    const content = expectedContent(item.metadata, item.kind);
    const call = item.kind === 'call_recording';
    expect(sidecar).toEqual({
      itemId: item.id,
      callId: call ? CALL.call_id : null,
      kind: item.kind,
      direction: call ? CALL.direction : null,
      from: call ? CALL.from : null,
      to: call ? CALL.to : null,
      extension: '100',
      start: item.occurred_at.toISOString(),
      durationSeconds: call ? CALL.duration : null,
      contentHash: dropboxContentHash(content),
      size: content.byteLength,
      archivedAt: expect.any(String),
    });
    expect(item.content_hash).toBe(dropboxContentHash(content));
    const archivedAt = Date.parse(String(sidecar?.archivedAt));
    expect(archivedAt).toBeGreaterThanOrEqual(startedAt.getTime() - 1000);
    expect(archivedAt).toBeLessThanOrEqual(Date.now());
  }
  // The items and three sidecars, nothing else.
  expect(stack.emulator.files(accountId)).toHaveLength(KINDS.length + 3);
}

async function attempt(
  fn: (request: SliceRequest) => Promise<SliceOutcome>,
  request: SliceRequest,
  previous?: { attempt: number; heartbeat: unknown },
): Promise<{ outcome?: SliceOutcome; failure?: ApplicationFailure; heartbeat: unknown }> {
  const env = new MockActivityEnvironment(
    previous ? { attempt: previous.attempt, heartbeatDetails: previous.heartbeat } : undefined,
  );
  let heartbeat: unknown;
  env.on('heartbeat', (details: unknown) => (heartbeat = details));
  try {
    return { outcome: await env.run(fn, request), heartbeat };
  } catch (err) {
    if (!(err instanceof ApplicationFailure)) throw err;
    return { failure: err, heartbeat };
  }
}

function commit(customer: string, leaseToken: string, outcome: SliceOutcome | undefined) {
  const staged = outcome?.items.flatMap((i) => (i.status === 'staged' && i.staged ? [i.staged] : [])) ?? [];
  return new MockActivityEnvironment().run<
    Parameters<typeof stack.activities.commitSessions>,
    Awaited<ReturnType<typeof stack.activities.commitSessions>>,
    typeof stack.activities.commitSessions
  >(stack.activities.commitSessions, customer, leaseToken, staged);
}

async function verify(customer: string) {
  type Start = typeof stack.activities.startVerification;
  type Reconcile = typeof stack.activities.reconcileWithDropbox;
  const { runId } = await new MockActivityEnvironment().run<Parameters<Start>, Awaited<ReturnType<Start>>, Start>(
    stack.activities.startVerification,
    customer,
  );
  return new MockActivityEnvironment().run<Parameters<Reconcile>, Awaited<ReturnType<Reconcile>>, Reconcile>(
    stack.activities.reconcileWithDropbox,
    { customerId: customer, runId },
  );
}

describe('metadata sidecars', () => {
  it('are written next to each recording, voicemail and fax with its fields, and SMS gets none', async () => {
    const { customer, accountId, request } = await customerWithItems(true);
    const started = new Date();
    const { outcome } = await attempt(stack.activities.uploadItems, request);
    expect(outcome?.items.map((i) => i.status)).toEqual(KINDS.map(() => 'archived'));
    await expectSidecars(customer, accountId, started);
  });

  it('are not written for a customer that turned them off', async () => {
    const { customer, accountId, request } = await customerWithItems(false);
    await attempt(stack.activities.uploadItems, request);
    const items = await rows(customer);
    expect(items.map((i) => [i.state, i.sidecar_path])).toEqual(KINDS.map(() => ['archived', null]));
    expect(stack.emulator.files(accountId)).toHaveLength(KINDS.length);
  });

  it('a 429 on the sidecar leaves the item not archived, and the retry writes both', async () => {
    const { customer, accountId, ids, request } = await customerWithItems(true);
    const only = { ...request, items: request.items.filter((i) => i.itemId === ids.voicemail) };
    // The item's upload takes the one request the token has; its sidecar's is answered 429.
    stack.emulator.configureAccount(accountId, { uploadsPerSecond: 0.1, burst: 1 });
    const first = await attempt(stack.activities.uploadItems, only);
    expect(first.failure?.type).toBe('RateLimited');
    const [item] = (await rows(customer)).filter((i) => i.id === ids.voicemail);
    expect(item?.state).toBe('leased');
    expect(stack.emulator.files(accountId).map((f) => f.pathLower)).toHaveLength(1);
    stack.emulator.configureAccount(accountId, { uploadsPerSecond: null });
    await stack.database.db.query('UPDATE customers SET throttled_until = NULL WHERE id = $1', [customer]);
    const retry = await attempt(stack.activities.uploadItems, only, { attempt: 2, heartbeat: first.heartbeat });
    expect(retry.outcome?.items.map((i) => i.status)).toEqual(['archived']);
    const [archived] = (await rows(customer)).filter((i) => i.id === ids.voicemail);
    expect(archived?.state).toBe('archived');
    const files = stack.emulator.files(accountId);
    expect(files.map((f) => f.pathDisplay).sort()).toEqual(
      [archived?.remote_path, besideItem(archived?.remote_path as string)].sort(),
    );
    // The item's file was written once: the retry's upload was identical content.
    expect(files.find((f) => f.pathDisplay === archived?.remote_path)?.writes).toBe(1);
    expect(sidecarAt(accountId, besideItem(archived?.remote_path as string))).toMatchObject({
      itemId: ids.voicemail,
      kind: 'voicemail',
    });
  });

  it('are written in batch commit mode too', async () => {
    const { customer, accountId, request } = await customerWithItems(true);
    const started = new Date();
    const { outcome } = await attempt(stack.activities.stageItems, request);
    expect(stack.emulator.files(accountId)).toHaveLength(0);
    const committed = await commit(customer, request.leaseToken, outcome);
    expect(committed.archived).toHaveLength(KINDS.length);
    await expectSidecars(customer, accountId, started);
  });

  it('are not unknown to a verification, and a missing one re-queues its item', async () => {
    const { customer, accountId, ids, request } = await customerWithItems(true);
    await attempt(stack.activities.uploadItems, request);
    const clean = await verify(customer);
    expect(clean).toMatchObject({ listed: KINDS.length + 3, expected: KINDS.length, present: KINDS.length });
    expect(clean).toMatchObject({ missing: 0, changed: 0, requeued: 0, unknown: 0 });

    const [fax] = (await rows(customer)).filter((i) => i.id === ids.fax);
    stack.emulator.removeFile(accountId, besideItem(fax?.remote_path as string));
    const drift = await verify(customer);
    expect(drift).toMatchObject({ present: KINDS.length, missing: 0, changed: 0, requeued: 1, unknown: 0 });
    const [requeued] = await stack.database.db.query<{ state: string; requeue_reason: string }>(
      `SELECT state, requeue_reason FROM archive_items WHERE id = $1`,
      [ids.fax],
    );
    expect(requeued).toEqual({ state: 'pending', requeue_reason: 'sidecar missing' });

    // Its next upload puts the sidecar back, and the next verification finds nothing amiss.
    const batch = await stack.activities.fetchBatch(customer, 10);
    expect(batch.items.map((i) => i.id)).toEqual([ids.fax]);
    await attempt(stack.activities.uploadItems, {
      customerId: customer,
      leaseToken: batch.leaseToken,
      concurrency: 1,
      items: [{ itemId: ids.fax as string, startAt: Date.now() }],
    });
    expect(sidecarAt(accountId, besideItem(fax?.remote_path as string))).toMatchObject({ itemId: ids.fax });
    expect(await verify(customer)).toMatchObject({ present: KINDS.length, requeued: 0, unknown: 0 });
  });
});
