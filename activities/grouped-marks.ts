// Group commit of archivals: the items that finish within a few milliseconds of each other, or
// while the previous group commits, are marked archived in one transaction.

import type { ArchivalMark } from '../db/items.js';

/** Marks at most this many items in one transaction. */
const MAX_GROUP = 200;

/**
 * Wraps `markMany` (one transaction for several items, returning those it marked) so that callers
 * mark one item each and are grouped: a group waits `lingerMs` from its first item, and one group
 * commits at a time. A failed transaction fails every item of its group.
 * @returns marks one item; resolves to false when its lease was lost
 */
export function markingInGroups(
  markMany: (items: ArchivalMark[]) => Promise<Set<string>>,
  { lingerMs }: { lingerMs: number },
): (mark: ArchivalMark) => Promise<boolean> {
  const waiting: Array<{ mark: ArchivalMark; resolve: (marked: boolean) => void; reject: (err: unknown) => void }> = [];
  let flushing = false;
  const flush = async () => {
    flushing = true;
    await new Promise((resolve) => setTimeout(resolve, lingerMs));
    while (waiting.length > 0) {
      const group = waiting.splice(0, MAX_GROUP);
      try {
        const marked = await markMany(group.map((g) => g.mark));
        for (const g of group) g.resolve(marked.has(g.mark.itemId));
      } catch (err) {
        for (const g of group) g.reject(err);
      }
    }
    flushing = false;
  };
  return (mark) =>
    new Promise<boolean>((resolve, reject) => {
      waiting.push({ mark, resolve, reject });
      if (!flushing) void flush();
    });
}
