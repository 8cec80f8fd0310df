/**
 * The chaos suite in small (npm run chaos is the full one): first the verifier against files
 * planted by hand, then a short drain through kills, restarts and faults.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDropboxEmulator, type DropboxEmulator } from 'dropbox-emulator';
import { startMediaServer, syntheticContent, type MediaServer } from '../../dev/media-server.js';
import { DEFAULT_OPTIONS, runChaos } from './chaos.js';
import { emulatorAdmin } from './parts.js';
import type { PlannedItem } from './plan.js';
import {
  expectedPath,
  expectedSidecarPath,
  failedChecks,
  verifyOutcome,
  type InsertedItem,
  type ItemRow,
} from './verify.js';

describe('the chaos verifier', () => {
  const customer = { id: 'v-1', name: 'Verifier', token: 'verifier-token', accountId: 'dbid:verifier' };
  let emulator: DropboxEmulator;
  let media: MediaServer;
  beforeAll(async () => {
    [emulator, media] = await Promise.all([
      startDropboxEmulator({ accounts: [{ token: customer.token, accountId: customer.accountId }] }),
      startMediaServer(),
    ]);
  });
  afterAll(async () => {
    await Promise.allSettled([emulator?.stop(), media?.stop()]);
  });

  async function upload(path: string, bytes: Buffer, mode: 'add' | 'overwrite' = 'add'): Promise<void> {
    const response = await fetch(`${emulator.url}/2/files/upload`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${customer.token}`,
        'content-type': 'application/octet-stream',
        'dropbox-api-arg': JSON.stringify({ path, mode }),
      },
      body: new Uint8Array(bytes),
    });
    expect(response.status).toBe(200);
  }

  it('finds every lost, mismatched, duplicated, extra, wrongly failed and unfinished item', async () => {
    const item = (id: string, sourceFault?: PlannedItem['sourceFault']): InsertedItem => ({
      id,
      key: `v-${id}`,
      customerId: customer.id,
      kind: 'voicemail',
      occurredAt: new Date(0),
      media: `verifier-${id}`,
      bytes: 1_000 + Number(id),
      body: null,
      sourceFault,
    });
    const items = ['1', '2', '3', '4', '5', '6', '7', '8', '9'].map((id) =>
      item(id, id === '5' ? '404' : id === '6' ? 'ftp' : undefined),
    );
    const bytesOf = (i: InsertedItem) => syntheticContent(i.media, i.bytes);
    const [ok, lost, wrong, twice, gone, , wronglyFailed, rewritten, noSidecar] = items as [
      InsertedItem,
      ...InsertedItem[],
    ];
    await upload(expectedPath(ok), bytesOf(ok));
    await upload(expectedPath(wrong!), Buffer.from('not the source'));
    await upload(expectedPath(twice!), bytesOf(twice!));
    await upload(expectedPath(twice!).replace('.mp3', ' (1).mp3'), bytesOf(twice!));
    await upload(expectedPath(rewritten!), Buffer.from('first'));
    await upload(expectedPath(rewritten!), bytesOf(rewritten!), 'overwrite');
    // Each archived item has its metadata sidecar beside it, except 9.
    for (const i of [ok, twice!, rewritten!]) await upload(expectedSidecarPath(i)!, Buffer.from('{}'), 'overwrite');
    await upload(expectedPath(noSidecar!), bytesOf(noSidecar!));
    await upload('/Archiver/notes.txt', Buffer.from('nobody asked for this'));
    const row = (id: string, state: string): [string, ItemRow] => [
      id,
      { id, state, attempts: 1, lastError: state === 'failed' ? 'boom' : null, remotePath: null, contentHash: null },
    ];
    const rows = new Map([
      row(ok.id, 'archived'),
      row(lost!.id, 'archived'),
      row(wrong!.id, 'archived'),
      row(twice!.id, 'archived'),
      row(gone!.id, 'failed'),
      row('6', 'pending'),
      row(wronglyFailed!.id, 'failed'),
      row(rewritten!.id, 'archived'),
      row(noSidecar!.id, 'archived'),
    ]);

    const v = await verifyOutcome({
      customers: [customer],
      items,
      rows,
      emulator: emulatorAdmin(emulator.url),
      mediaUrl: media.url,
    });

    expect(v.archived).toBe(3); // ok, twice, rewritten: present with the source's bytes
    expect(v.failed).toBe(1);
    expect(v.lost.map((p) => p.itemId)).toEqual(['2', '7', '9']);
    expect(v.lost.at(-1)?.detail).toMatch(/no metadata sidecar at \/Archiver\/Voicemail\/9\.json/);
    expect(v.mismatched.map((p) => p.itemId)).toEqual(['3']);
    expect(v.duplicated.map((f) => f.path).sort()).toEqual([
      '/Archiver/Voicemail/4 (1).mp3',
      '/Archiver/Voicemail/8.mp3',
    ]);
    expect(v.extra.map((f) => f.path)).toEqual(['/Archiver/notes.txt']);
    expect(v.wronglyFailed.map((p) => p.itemId)).toEqual(['7']);
    expect(v.notFailed.map((p) => p.itemId)).toEqual(['6']);
    expect(v.unsettled.map((p) => p.itemId)).toEqual(['6']);
    // Rows without the path and hash the product records disagree with what is in Dropbox.
    expect(v.bookkeeping.map((p) => p.itemId)).toEqual(['1', '4', '8']);
    expect(failedChecks(v)).toContain('lost=3');
  });
});

describe('a small chaos drain', () => {
  it('archives every item exactly once, or fails it for a permanent reason, through kills, restarts and faults', async () => {
    const lines: string[] = [];
    const result = await runChaos({
      ...DEFAULT_OPTIONS,
      items: 240,
      customers: 2,
      kills: 2,
      temporalRestarts: 1,
      postgresRestarts: 1,
      sourceFaultsPerKind: 1,
      // 120 items per customer at 8/s: about 15 s without faults.
      ratePerAccount: 8,
      baseline: false,
      drainTimeoutSeconds: 90,
      log: (line) => lines.push(line),
    });
    console.log([...lines.slice(-12), ...result.problems, result.figures].join('\n'));
    expect(result.problems).toEqual([]);
    expect(result.passed).toBe(true);
  }, 180_000);
});
