// What a customer sees in its Dropbox, listed through the dropbox SDK as any client would: each
// call recording, voicemail and fax with its metadata sidecar `<same name>.json` beside it, SMS
// without one, and the day's manifest at <folder root>/manifests/<day>.csv, as the README says.
import { expect, it } from 'vitest';
import { insertPendingItems, type ItemKind, type NewItem } from '../../db/items.js';
import { syntheticUrl } from '../../dev/media-server.js';
import { verifyArchive } from '../../workflows/index.js';
import { verifyWorkflowIdFor } from '../../workflows/names.js';
import { listFiles } from '../chaos/verify.js';
import { startArchiving, statusWhen } from '../support/harness.js';
import { insertItems } from '../support/items.js';
import { uniqueName } from '../support/stack.js';
import { useArchiverStack } from '../support/archiver-stack.js';

const TOKEN = 'token-archive-layout';
const stack = useArchiverStack({ emulator: { accounts: [{ token: TOKEN, accountId: 'dbid:archive-layout' }] } });

const KINDS: ItemKind[] = ['call_recording', 'voicemail', 'fax', 'sms'];

it('lists each recording, voicemail and fax with its .json sidecar beside it, SMS without one, and the day manifest under manifests/', async () => {
  const customerId = uniqueName('layout');
  // The customer, with sidecars on (and day manifests, on by default).
  await insertItems(stack.database.db, customerId, TOKEN, stack.media.url, 0, { sidecars: true });
  const day = new Date(Date.now() - 24 * 3600_000).toISOString().slice(0, 10);
  const items: NewItem[] = KINDS.map((kind, n) => {
    const media = `${customerId}-${n}`;
    return {
      kind,
      occurredAt: new Date(`${day}T10:0${n}:00Z`),
      metadata: { extension: '100', media, bytes: 300 + n, call_id: `call-${n}`, from: '+15551230000' },
      sourceUrl: kind === 'sms' ? null : syntheticUrl(stack.media.url, media, 300 + n),
      body: kind === 'sms' ? `sms ${media}` : null,
      sizeBytes: kind === 'sms' ? null : 300 + n,
    };
  });
  await insertPendingItems(stack.database.db, customerId, items);
  await startArchiving(stack.temporal, customerId);
  await statusWhen(stack.temporal.client, customerId, (s) => s.state === 'idle' && s.totals.archived === KINDS.length);
  // Verification writes the manifests of the days that are over.
  await stack.temporal.client.workflow.execute(verifyArchive, {
    taskQueue: stack.temporal.taskQueue,
    workflowId: verifyWorkflowIdFor(customerId),
    args: [{ customerId }],
  });

  const listed = (await listFiles(stack.emulator.url, TOKEN)).map((f) => f.path_display ?? '').sort();
  const rows = await stack.database.db.query<{ remote_path: string; kind: ItemKind }>(
    `SELECT remote_path, kind FROM archive_items WHERE customer_id = $1 AND state = 'archived' ORDER BY id`,
    [customerId],
  );
  const expected = [`/Archiver/manifests/${day}.csv`];
  for (const { remote_path: path, kind } of rows) {
    expect(path.startsWith(`/Archiver/100/${day}/`), path).toBe(true);
    expected.push(path);
    if (kind !== 'sms') expected.push(path.replace(/\.[^./]+$/, '.json'));
  }
  expect(rows).toHaveLength(KINDS.length);
  expect(listed).toEqual(expected.sort());
});
