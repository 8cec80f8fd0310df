import { afterAll, expect, it } from 'vitest';
import { dropboxContentHash } from '../../activities/dropbox/content-hash.js';
import { syntheticContent } from '../../dev/media-server.js';
import { TASK_QUEUE } from '../../workflows/names.js';
import { startArchiving, statusWhen } from '../support/harness.js';
import { insertItems } from '../support/items.js';
import { workerProcesses } from '../support/worker-process.js';
import { eventually, uniqueName } from '../support/stack.js';
import { useArchiverStack } from '../support/archiver-stack.js';

const MIB = 1024 * 1024;
const SIZE = 200 * MIB;
/** The worker's default upload-session chunk. */
const CHUNK = 8 * MIB;

const workers = workerProcesses(() => stack);

const stack = useArchiverStack({ namespace: 'sessions', worker: false });

afterAll(() => {
  workers.killAll();
});

it('archives a 200 MiB recording through an upload session, and a worker SIGKILLed mid-upload does not make the next one re-send committed chunks', async () => {
  const token = uniqueName('tok');
  const accountId = stack.emulator.addAccount({ token });
  // Slow appends down so the kill lands mid-upload.
  stack.emulator.configureAccount(accountId, { latencyMs: 250, faultRoutes: ['files/upload_session/append_v2'] });
  const customer = uniqueName('big');
  const [itemId] = await insertItems(stack.database.db, customer, token, stack.media.url, 1, {
    kind: 'call_recording',
    bytes: SIZE,
  });

  const first = workers.spawn();
  await first.started;
  await startArchiving({ ...stack.temporal, taskQueue: TASK_QUEUE }, customer);
  const session = await eventually(
    () => Promise.resolve(stack.emulator.sessions(accountId).find((s) => s.offset >= 6 * CHUNK)),
    120_000,
    'a session 48 MiB in',
  );
  first.child.kill('SIGKILL');
  const committedAtKill = stack.emulator.session(session.sessionId)?.offset ?? 0;

  const second = workers.spawn();
  await second.started;
  await statusWhen(stack.temporal.client, customer, (s) => s.totals.archived === 1, 180_000);

  const after = stack.emulator.session(session.sessionId);
  console.log(
    `200 MiB upload: killed at ${committedAtKill} committed bytes; session received ${after?.bytesReceived} bytes for ${SIZE} (${(after?.bytesReceived ?? 0) - SIZE} re-sent)`,
  );
  expect(after?.state).toBe('committed');
  expect(stack.emulator.sessions(accountId)).toHaveLength(1);
  // Every committed byte crossed the wire once; at most the chunk in flight at the kill was sent twice.
  expect(after?.bytesReceived).toBeLessThanOrEqual(SIZE + CHUNK);
  expect(committedAtKill).toBeGreaterThanOrEqual(6 * CHUNK);
  expect(stack.emulator.stats().requests['/2/files/upload 200']).toBeUndefined();

  const [row] = await stack.database.db.query<{
    state: string;
    remote_path: string;
    content_hash: string;
    size_bytes: string;
    metadata: { media: string };
  }>('SELECT state, remote_path, content_hash, size_bytes, metadata FROM archive_items WHERE id = $1', [itemId]);
  const expectedHash = dropboxContentHash(syntheticContent(row?.metadata.media ?? '', SIZE));
  expect(row).toMatchObject({ state: 'archived', content_hash: expectedHash, size_bytes: String(SIZE) });
  const stored = stack.emulator.files(accountId).find((f) => f.pathDisplay === row?.remote_path);
  expect(stored).toMatchObject({ size: SIZE, contentHash: expectedHash, writes: 1 });
  second.child.kill('SIGTERM');
}, 400_000);
