// What anyone who can read Temporal's database or open the Web UI without the codec sees of a
// customer: a full drain's histories as the server stores them, every payload, memo, failure
// message and heartbeat, hold no token, customer name, phone number, URL or Dropbox path. Read
// through the codec, the same histories show the customer's name, so the search can find it.
import { testKeyring } from '../support/secret-keys.js';
import { expect, it } from 'vitest';
import { startCustomer } from '../../client/archiver-client.js';
import { faultyUrl, syntheticUrl } from '../../dev/media-server.js';
import { upsertCustomer } from '../../db/customers.js';
import { EncryptionCodec } from '../../temporal/payload-codec.js';
import { workflowIdFor } from '../../workflows/names.js';
import { useArchiverStack } from '../support/archiver-stack.js';
import { statusWhen } from '../support/harness.js';
import { uniqueName } from '../support/stack.js';

const stack = useArchiverStack({ worker: { itemRetry: { initialDelayMs: 200, maxAttempts: 2, maxAgeMs: 60_000 } } });

const NAME = 'Zebulon Dental Care';
const TOKEN = 'sl.privacy-test-token-7f3a9c';
const FROM = '+14155550123';
const TO = '+14155550199';

/** Every text in a raw proto object: strings as they are, bytes as UTF-8 (payload data, memo values, details). */
function texts(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (value instanceof Uint8Array) out.push(Buffer.from(value).toString('utf8'));
  else if (Array.isArray(value)) for (const v of value) texts(v, out);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) texts(v, out);
  return out;
}

/** The same object with every payload in it opened by the codec. */
async function opened(value: unknown, codec: EncryptionCodec): Promise<unknown> {
  if (value instanceof Uint8Array || typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return Promise.all(value.map((v) => opened(v, codec)));
  const record = value as Record<string, unknown>;
  if (record.metadata && typeof record.metadata === 'object' && 'data' in record)
    return (await codec.decode([record]))[0];
  return Object.fromEntries(
    await Promise.all(Object.entries(record).map(async ([k, v]) => [k, await opened(v, codec)] as const)),
  );
}

it('keeps tokens, names, phone numbers, URLs and paths out of what Temporal stores', async () => {
  const id = uniqueName('privacy');
  const { db } = stack.database;
  stack.emulator.addAccount({ token: TOKEN, accountId: id });
  await upsertCustomer(db, testKeyring(), { id, name: NAME, accessToken: TOKEN });
  const media = stack.media.url;
  const urls: string[] = [];
  const insert = async (name: string, url: string) => {
    urls.push(url);
    await db.query(
      `INSERT INTO archive_items (customer_id, kind, occurred_at, metadata, source_url, size_bytes)
       VALUES ($1, 'call_recording', now(), $2, $3, 1500)`,
      [id, { from: FROM, to: TO, extension: '204', media: name, bytes: 1500 }, url],
    );
  };
  for (let n = 0; n < 12; n++) await insert(`${id}-${n}`, syntheticUrl(media, `${id}-${n}`, 1500));
  // Failures whose messages name the source's URL: one gone for good, one that fails twice.
  await insert(`${id}-gone`, faultyUrl(media, '404', `${id}-gone`, 1500));
  await insert(`${id}-flaky`, faultyUrl(media, '503', `${id}-flaky`, 1500));
  // 429s, so slices fail, carry heartbeats and are retried by Temporal.
  stack.emulator.queueFaults(
    id,
    [1, 2].map(() => ({ route: 'files/upload', fault: 'too_many_requests' as const })),
  );

  // While it drains, what the server holds of activities in flight: their heartbeat details.
  const { workflowService } = stack.temporal.client;
  const execution = { workflowId: workflowIdFor(id) };
  const namespace = stack.temporal.namespace;
  const inFlight: unknown[] = [];
  let draining = true;
  const watching = (async () => {
    while (draining) {
      const seen = await workflowService.describeWorkflowExecution({ namespace, execution }).catch(() => undefined);
      if (seen?.pendingActivities?.some((a) => a.heartbeatDetails?.payloads?.length)) inFlight.push(seen);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  await startCustomer(stack.temporal.client, id, NAME, { taskQueue: stack.temporal.taskQueue });
  await statusWhen(
    stack.temporal.client,
    id,
    (s) => s.state === 'idle' && s.totals.archived === 12 && s.totals.failed === 2,
    120_000,
  );
  const [path] = await db.query<{ remote_path: string }>(
    `SELECT remote_path FROM archive_items WHERE customer_id = $1 AND state = 'archived' LIMIT 1`,
    [id],
  );
  expect(path?.remote_path).toContain(FROM.slice(1));

  draining = false;
  await watching;
  // A slice retried after a 429 waited with its heartbeat on the server.
  expect(inFlight.length).toBeGreaterThan(0);
  // As the server stores them: the raw history and the description, never decoded.
  const history = await workflowService.getWorkflowExecutionHistory({ namespace, execution });
  const description = await workflowService.describeWorkflowExecution({ namespace, execution });
  const raw = texts([history, description, inFlight]).join('\n');
  expect(raw).toContain(workflowIdFor(id)); // the search reads the records at all
  const needles = {
    token: TOKEN,
    'customer name': 'Zebulon',
    'phone number': FROM.slice(2),
    'other phone number': TO.slice(2),
    'media server': new URL(media).host,
    'source URL': urls[0]!,
    'Dropbox path': path!.remote_path,
  };
  for (const [what, needle] of Object.entries(needles)) expect(raw, `${what} in raw history`).not.toContain(needle);
  expect(raw).toContain('binary/encrypted');

  // Through the codec, the same records read: the customer's name (memo, input, summary) is there.
  const decoded = texts(await opened([history, description, inFlight], new EncryptionCodec(testKeyring()))).join('\n');
  expect(decoded).toContain(NAME);
  expect(decoded).not.toContain(TOKEN);
}, 180_000);
