import { describe, expect, it } from 'vitest';
import { markingInGroups } from '../../activities/grouped-marks.js';
import type { ArchivalMark } from '../../db/items.js';

const mark = (itemId: string): ArchivalMark => ({
  itemId,
  leaseToken: 'lease',
  remote: { path: `/x/${itemId}`, rev: 'r', contentHash: 'h', size: 1 },
  by: { actor: 'test' },
});

describe('markingInGroups', () => {
  it('marks items that finish together in one call, and tells each caller whether its item was marked', async () => {
    const calls: string[][] = [];
    const markOne = markingInGroups(
      (items) => {
        calls.push(items.map((i) => i.itemId));
        // Item 3 lost its lease.
        return Promise.resolve(new Set(items.map((i) => i.itemId).filter((id) => id !== '3')));
      },
      { lingerMs: 5 },
    );
    const results = await Promise.all(['1', '2', '3', '4'].map((id) => markOne(mark(id))));
    expect(calls).toEqual([['1', '2', '3', '4']]);
    expect(results).toEqual([true, true, false, true]);
  });

  it('commits one group at a time: items that finish during a commit go in the next', async () => {
    const calls: string[][] = [];
    let release: () => void = () => {};
    const markOne = markingInGroups(
      async (items) => {
        calls.push(items.map((i) => i.itemId));
        if (calls.length === 1) await new Promise<void>((r) => (release = r));
        return new Set(items.map((i) => i.itemId));
      },
      { lingerMs: 1 },
    );
    const first = markOne(mark('a'));
    await new Promise((r) => setTimeout(r, 20));
    const later = [markOne(mark('b')), markOne(mark('c'))];
    await new Promise((r) => setTimeout(r, 20));
    expect(calls).toEqual([['a']]);
    release();
    expect(await Promise.all([first, ...later])).toEqual([true, true, true]);
    expect(calls).toEqual([['a'], ['b', 'c']]);
  });

  it('fails every item of a group whose transaction failed, and goes on with the next group', async () => {
    let n = 0;
    const markOne = markingInGroups(
      (items) =>
        n++ === 0
          ? Promise.reject(new Error('Postgres is down'))
          : Promise.resolve(new Set(items.map((i) => i.itemId))),
      { lingerMs: 1 },
    );
    const failed = await Promise.allSettled([markOne(mark('1')), markOne(mark('2'))]);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(await markOne(mark('3'))).toBe(true);
  });
});
