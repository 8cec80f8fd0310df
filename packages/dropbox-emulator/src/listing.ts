import { taggedMetadata, type AccountSpace, type EntryNode } from './store.js';

/**
 * Everything a cursor needs travels inside it, so the emulator keeps no per-cursor state. A listing
 * is a snapshot: entries created after sequence `s` are left out of the initial pages and
 * reported by `continue` once the listing is exhausted ("changes" mode), as Dropbox does.
 */
export interface CursorState {
  v: 1;
  /** Account the cursor belongs to; another account's token may not use it. */
  a: string;
  /** Lower-cased folder path, "" for the root. */
  p: string;
  r: boolean;
  l: number;
  m: 'list' | 'changes';
  /** list: snapshot sequence; changes: last sequence already reported. */
  s: number;
  /** list: last path returned. */
  k: string | null;
}

export interface ListFolderResult {
  entries: Record<string, unknown>[];
  cursor: string;
  has_more: boolean;
}

export function encodeCursor(state: CursorState): string {
  return Buffer.from(JSON.stringify(state)).toString('base64url');
}

export function decodeCursor(cursor: string): CursorState | undefined {
  let v: Partial<CursorState>;
  try {
    v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Partial<CursorState>;
  } catch {
    return undefined;
  }
  const valid =
    typeof v === 'object' &&
    v !== null &&
    v.v === 1 &&
    typeof v.a === 'string' &&
    typeof v.p === 'string' &&
    typeof v.r === 'boolean' &&
    Number.isInteger(v.l) &&
    (v.l ?? 0) > 0 &&
    (v.m === 'list' || v.m === 'changes') &&
    Number.isInteger(v.s) &&
    (v.k === null || typeof v.k === 'string');
  return valid ? (v as CursorState) : undefined;
}

export function startListing(
  space: AccountSpace,
  accountId: string,
  pathLower: string,
  recursive: boolean,
  limit: number,
): ListFolderResult {
  return listPage(space, {
    v: 1,
    a: accountId,
    p: pathLower,
    r: recursive,
    l: limit,
    m: 'list',
    s: space.seq,
    k: null,
  });
}

export function continueListing(space: AccountSpace, state: CursorState): ListFolderResult {
  return state.m === 'list' ? listPage(space, state) : changesPage(space, state);
}

function inScope(key: string, state: CursorState): boolean {
  // A recursive listing of a folder includes the folder itself; the root has no entry.
  if (key === state.p) return state.r;
  const prefix = `${state.p}/`;
  return key.startsWith(prefix) && (state.r || !key.includes('/', prefix.length));
}

function listPage(space: AccountSpace, state: CursorState): ListFolderResult {
  const keys = space.sortedKeys();
  const prefix = `${state.p}/`;
  const wanted = (key: string): EntryNode | undefined => {
    const node = space.nodes.get(key);
    return node && node.createdSeq <= state.s && inScope(key, state) ? node : undefined;
  };
  const out: EntryNode[] = [];
  let last = state.k;
  if (last === null && state.r && state.p !== '') {
    const self = wanted(state.p);
    if (self) out.push(self);
    last = state.p;
  }
  // Descendants of a folder are contiguous in sorted order, right after `${path}/`.
  let i = last === null || last < prefix ? lowerBound(keys, prefix) : upperBound(keys, last);
  let hasMore = false;
  for (; i < keys.length; i++) {
    const key = keys[i] as string;
    if (!key.startsWith(prefix)) break;
    const node = wanted(key);
    if (!node) continue;
    if (out.length === state.l) {
      hasMore = true;
      break;
    }
    out.push(node);
    last = key;
  }
  const next: CursorState = hasMore ? { ...state, k: last } : { ...state, m: 'changes', k: null };
  return { entries: out.map(taggedMetadata), cursor: encodeCursor(next), has_more: hasMore };
}

function changesPage(space: AccountSpace, state: CursorState): ListFolderResult {
  const changed = [...space.nodes.values()]
    .filter((n) => n.modifiedSeq > state.s && inScope(n.pathLower, state))
    .sort((a, b) => a.modifiedSeq - b.modifiedSeq);
  const page = changed.slice(0, state.l);
  const hasMore = changed.length > page.length;
  const s = hasMore ? (page.at(-1) as EntryNode).modifiedSeq : space.seq;
  return { entries: page.map(taggedMetadata), cursor: encodeCursor({ ...state, s }), has_more: hasMore };
}

function lowerBound(keys: string[], target: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((keys[mid] as string) < target) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function upperBound(keys: string[], target: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((keys[mid] as string) <= target) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
