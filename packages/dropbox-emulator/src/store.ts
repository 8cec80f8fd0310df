import { dropboxTime, newDropboxId, type Tagged } from './wire.js';

export interface FileNode {
  kind: 'file';
  name: string;
  pathLower: string;
  pathDisplay: string;
  id: string;
  clientModified: string;
  serverModified: string;
  rev: string;
  size: number;
  contentHash: string;
  /** The bytes are in the content store (keepContent); files/download needs them. */
  hasContent: boolean;
  writes: number;
  /** Account-wide change sequence numbers; list_folder cursors are positions in this sequence. */
  createdSeq: number;
  modifiedSeq: number;
}

export interface FolderNode {
  kind: 'folder';
  name: string;
  pathLower: string;
  pathDisplay: string;
  id: string;
  createdSeq: number;
  modifiedSeq: number;
}

export type EntryNode = FileNode | FolderNode;

/** One account's namespace, keyed by lower-cased path ("/a/b.txt"); the root itself has no entry. */
export class AccountSpace {
  readonly nodes = new Map<string, EntryNode>();
  seq = 0;
  /** Sum of file sizes, for the quota. */
  usedBytes = 0;
  private sorted: string[] | undefined;

  /** Sorted once per batch of creations, so paging a large listing doesn't sort per page. */
  sortedKeys(): string[] {
    this.sorted ??= [...this.nodes.keys()].sort();
    return this.sorted;
  }

  insert(node: EntryNode): void {
    this.nodes.set(node.pathLower, node);
    this.sorted = undefined;
  }

  delete(pathLower: string): void {
    this.nodes.delete(pathLower);
    this.sorted = undefined;
  }
}

export type WriteMode = { kind: 'add' } | { kind: 'overwrite' } | { kind: 'update'; rev: string };

export interface WriteRequest {
  /** Starts with "/" (the caller has checked the pattern). */
  path: string;
  mode: WriteMode;
  autorename: boolean;
  strictConflict: boolean;
  clientModified: string | undefined;
  size: number;
  contentHash: string;
  /** Kept when the emulator retains content. */
  content?: Buffer | undefined;
  /** null/undefined = unlimited. */
  quotaBytes?: number | null | undefined;
}

/** Where file bytes live, keyed by content hash (identical files share one copy). */
export interface ContentStore {
  put(contentHash: string, bytes: Buffer): void;
  get(contentHash: string): Buffer | undefined;
}

/** Receives every created or changed entry, for the optional on-disk store. */
export type ChangeListener = (accountId: string, node: EntryNode) => void;

/** `reason` is a Stone `WriteError`, which each route wraps in its own error union. */
export type WriteResult = { ok: true; file: FileNode; written: boolean } | { ok: false; reason: Tagged };

const DISALLOWED_NAMES = new Set(['desktop.ini', 'thumbs.db', '.ds_store', 'icon\r', '.dropbox', '.dropbox.attr']);
const MAX_COMPONENT_LENGTH = 255;
/** Fixed-width hex that only grows, so revs compare correctly both numerically and as strings. */
const REV_BASE = 0x15b860f6dd0;

/** "/" → []; undefined when a component is empty, a dot name, or too long (Dropbox's malformed_path). */
export function splitPath(path: string): string[] | undefined {
  if (path === '/') return [];
  const comps = path.slice(1).split('/');
  const bad = comps.some((c) => c === '' || c === '.' || c === '..' || c.length > MAX_COMPONENT_LENGTH);
  return bad ? undefined : comps;
}

const conflict = (what: 'file' | 'folder' | 'file_ancestor'): Tagged => ({
  '.tag': 'conflict',
  conflict: { '.tag': what },
});

type Decision = 'same' | 'overwrite' | 'rename' | Tagged;

/** Dropbox's WriteMode rules for a path that already has something at it. */
function decide(existing: EntryNode, req: WriteRequest): Decision {
  if (existing.kind === 'folder') return req.autorename ? 'rename' : conflict('folder');
  const identical = existing.contentHash === req.contentHash && existing.size === req.size;
  // Identical content is "nothing gets written; no conflict" unless strict_conflict asks otherwise.
  if (identical && !req.strictConflict) return 'same';
  const replaces = req.mode.kind === 'overwrite' || (req.mode.kind === 'update' && req.mode.rev === existing.rev);
  if (replaces) return identical ? 'same' : 'overwrite';
  return req.autorename ? 'rename' : conflict('file');
}

function renamed(name: string, n: number): string {
  const dot = name.lastIndexOf('.');
  // A leading dot is part of the name (".env"), not an extension.
  return dot > 0 ? `${name.slice(0, dot)} (${n})${name.slice(dot)}` : `${name} (${n})`;
}

export class EmulatorStore {
  private readonly spaces = new Map<string, AccountSpace>();
  private revCounter = 0;
  filesWritten = 0;

  constructor(
    /** Undefined = bytes are not kept (keepContent: false). */
    readonly contents: ContentStore | undefined,
    private readonly onChange: ChangeListener = () => {},
  ) {}

  space(accountId: string): AccountSpace {
    let space = this.spaces.get(accountId);
    if (!space) {
      space = new AccountSpace();
      this.spaces.set(accountId, space);
    }
    return space;
  }

  accountIds(): string[] {
    return [...this.spaces.keys()];
  }

  /** Rebuilds entries from the on-disk journal; later records of a path win. */
  restore(accountId: string, node: EntryNode): void {
    const space = this.space(accountId);
    const old = space.nodes.get(node.pathLower);
    if (old?.kind === 'file') space.usedBytes -= old.size;
    if (node.kind === 'file') {
      space.usedBytes += node.size;
      this.revCounter = Math.max(this.revCounter, parseInt(node.rev, 16) - REV_BASE + 1);
    }
    space.insert(node);
    space.seq = Math.max(space.seq, node.createdSeq, node.modifiedSeq);
  }

  write(accountId: string, req: WriteRequest): WriteResult {
    const comps = splitPath(req.path);
    const name = comps?.at(-1);
    if (!comps || name === undefined) return { ok: false, reason: { '.tag': 'malformed_path', malformed_path: null } };
    if (DISALLOWED_NAMES.has(name.toLowerCase())) return { ok: false, reason: { '.tag': 'disallowed_name' } };

    const space = this.space(accountId);
    // Parents are implicit; reuse the stored casing of ones that exist, as Dropbox does.
    const missing: { lower: string; display: string; name: string }[] = [];
    let parentLower = '';
    let parentDisplay = '';
    for (const comp of comps.slice(0, -1)) {
      const lower = `${parentLower}/${comp.toLowerCase()}`;
      const node = space.nodes.get(lower);
      if (node?.kind === 'file') return { ok: false, reason: conflict('file_ancestor') };
      const display = node ? node.pathDisplay : `${parentDisplay}/${comp}`;
      if (!node) missing.push({ lower, display, name: comp });
      parentLower = lower;
      parentDisplay = display;
    }

    let finalName = name;
    const existing = space.nodes.get(`${parentLower}/${name.toLowerCase()}`);
    if (existing) {
      const decision = decide(existing, req);
      if (decision === 'same')
        return { ok: true, file: this.keepContent(accountId, existing as FileNode, req), written: false };
      if (decision === 'overwrite') {
        const old = existing as FileNode;
        if (overQuota(space, req, old.size)) return { ok: false, reason: { '.tag': 'insufficient_space' } };
        return { ok: true, file: this.overwrite(accountId, space, old, req), written: true };
      }
      if (decision !== 'rename') return { ok: false, reason: decision };
      for (let n = 1; space.nodes.has(`${parentLower}/${finalName.toLowerCase()}`); n++) finalName = renamed(name, n);
    }
    if (overQuota(space, req, 0)) return { ok: false, reason: { '.tag': 'insufficient_space' } };

    for (const folder of missing) {
      const seq = ++space.seq;
      const node: FolderNode = {
        kind: 'folder',
        name: folder.name,
        pathLower: folder.lower,
        pathDisplay: folder.display,
        id: newDropboxId(),
        createdSeq: seq,
        modifiedSeq: seq,
      };
      space.insert(node);
      this.onChange(accountId, node);
    }
    const now = dropboxTime();
    const seq = ++space.seq;
    const file: FileNode = {
      kind: 'file',
      name: finalName,
      pathLower: `${parentLower}/${finalName.toLowerCase()}`,
      pathDisplay: `${parentDisplay}/${finalName}`,
      id: newDropboxId(),
      clientModified: req.clientModified ?? now,
      serverModified: now,
      rev: this.nextRev(),
      size: req.size,
      contentHash: req.contentHash,
      hasContent: this.putContent(req),
      writes: 1,
      createdSeq: seq,
      modifiedSeq: seq,
    };
    space.insert(file);
    space.usedBytes += file.size;
    this.filesWritten++;
    this.onChange(accountId, file);
    return { ok: true, file, written: true };
  }

  /**
   * Removes a file, as if the account's owner deleted it outside the API; true if one was there.
   * Not journaled: an emulator restarted from its store directory has the file again.
   */
  remove(accountId: string, pathLower: string): boolean {
    const space = this.space(accountId);
    const node = space.nodes.get(pathLower);
    if (node?.kind !== 'file') return false;
    space.delete(pathLower);
    space.usedBytes -= node.size;
    space.seq++;
    return true;
  }

  /** The path's entry, the root folder as null, or undefined when nothing is there. */
  lookup(accountId: string, pathLower: string): EntryNode | null | undefined {
    if (pathLower === '') return null;
    const space = this.space(accountId);
    if (pathLower.startsWith('id:')) {
      for (const node of space.nodes.values()) if (node.id.toLowerCase() === pathLower) return node;
      return undefined;
    }
    return space.nodes.get(pathLower);
  }

  contentOf(file: FileNode): Buffer | undefined {
    return file.hasContent ? this.contents?.get(file.contentHash) : undefined;
  }

  private putContent(req: WriteRequest): boolean {
    if (!this.contents || req.content === undefined) return false;
    this.contents.put(req.contentHash, req.content);
    return true;
  }

  /** An identical re-upload writes nothing, but may supply bytes an older write did not keep. */
  private keepContent(accountId: string, file: FileNode, req: WriteRequest): FileNode {
    if (!file.hasContent && this.putContent(req)) {
      file.hasContent = true;
      this.onChange(accountId, file);
    }
    return file;
  }

  private overwrite(accountId: string, space: AccountSpace, file: FileNode, req: WriteRequest): FileNode {
    const now = dropboxTime();
    space.usedBytes += req.size - file.size;
    file.size = req.size;
    file.contentHash = req.contentHash;
    file.hasContent = this.putContent(req);
    file.rev = this.nextRev();
    file.serverModified = now;
    file.clientModified = req.clientModified ?? now;
    file.writes++;
    file.modifiedSeq = ++space.seq;
    this.filesWritten++;
    this.onChange(accountId, file);
    return file;
  }

  private nextRev(): string {
    return (REV_BASE + this.revCounter++).toString(16);
  }
}

function overQuota(space: AccountSpace, req: WriteRequest, replacedBytes: number): boolean {
  return (
    req.quotaBytes !== undefined &&
    req.quotaBytes !== null &&
    space.usedBytes - replacedBytes + req.size > req.quotaBytes
  );
}

/** FileMetadata as `files/upload` returns it: no `.tag`. */
export function fileMetadata(f: FileNode): Record<string, unknown> {
  return {
    name: f.name,
    path_lower: f.pathLower,
    path_display: f.pathDisplay,
    id: f.id,
    client_modified: f.clientModified,
    server_modified: f.serverModified,
    rev: f.rev,
    size: f.size,
    is_downloadable: true,
    content_hash: f.contentHash,
  };
}

/** Metadata as get_metadata and list_folder return it: a union, so tagged. */
export function taggedMetadata(node: EntryNode): Record<string, unknown> {
  if (node.kind === 'file') return { '.tag': 'file', ...fileMetadata(node) };
  return { '.tag': 'folder', name: node.name, path_lower: node.pathLower, path_display: node.pathDisplay, id: node.id };
}
