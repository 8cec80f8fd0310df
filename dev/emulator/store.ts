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
}

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
  const replaces =
    req.mode.kind === 'overwrite' || (req.mode.kind === 'update' && req.mode.rev === existing.rev);
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
      if (decision === 'same') return { ok: true, file: existing as FileNode, written: false };
      if (decision === 'overwrite') return { ok: true, file: this.overwrite(space, existing as FileNode, req), written: true };
      if (decision !== 'rename') return { ok: false, reason: decision };
      for (let n = 1; space.nodes.has(`${parentLower}/${finalName.toLowerCase()}`); n++) finalName = renamed(name, n);
    }

    for (const folder of missing) {
      const seq = ++space.seq;
      space.insert({
        kind: 'folder',
        name: folder.name,
        pathLower: folder.lower,
        pathDisplay: folder.display,
        id: newDropboxId(),
        createdSeq: seq,
        modifiedSeq: seq,
      });
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
      writes: 1,
      createdSeq: seq,
      modifiedSeq: seq,
    };
    space.insert(file);
    this.filesWritten++;
    return { ok: true, file, written: true };
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

  private overwrite(space: AccountSpace, file: FileNode, req: WriteRequest): FileNode {
    const now = dropboxTime();
    file.size = req.size;
    file.contentHash = req.contentHash;
    file.rev = this.nextRev();
    file.serverModified = now;
    file.clientModified = req.clientModified ?? now;
    file.writes++;
    file.modifiedSeq = ++space.seq;
    this.filesWritten++;
    return file;
  }

  private nextRev(): string {
    return (REV_BASE + this.revCounter++).toString(16);
  }
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
