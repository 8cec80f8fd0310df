import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { ContentStore, EntryNode } from './store.js';

export class MemoryContentStore implements ContentStore {
  private readonly blobs = new Map<string, Buffer>();

  put(contentHash: string, bytes: Buffer): void {
    this.blobs.set(contentHash, bytes);
  }

  get(contentHash: string): Buffer | undefined {
    return this.blobs.get(contentHash);
  }
}

interface JournalLine {
  a: string;
  n: EntryNode;
}

function isJournalLine(v: unknown): v is JournalLine {
  const line = v as Partial<JournalLine> | null;
  return (
    typeof line?.a === 'string' &&
    typeof line.n === 'object' &&
    line.n !== null &&
    (line.n.kind === 'file' || line.n.kind === 'folder') &&
    typeof line.n.pathLower === 'string'
  );
}

/**
 * `storeDir`: an append-only journal of entry changes (`journal.jsonl`, one JSON line per created
 * or changed file or folder; replaying it rebuilds the namespaces) plus content blobs named by
 * content hash (`blobs/ab/abcdef…`). Appends are synchronous so that a killed emulator loses at
 * most the line being written, and blobs are written before the entry that refers to them.
 * Upload sessions, tokens and stats are not persisted.
 */
export class DiskStore implements ContentStore {
  private fd: number | undefined;
  /** After stop(), late writers (a v1 batch job finishing) must not reopen the journal. */
  private closed = false;

  constructor(readonly dir: string) {
    mkdirSync(join(dir, 'blobs'), { recursive: true });
  }

  private get journalPath(): string {
    return join(this.dir, 'journal.jsonl');
  }

  /** Entries recorded by earlier runs, oldest first. A torn last line (crash mid-append) is skipped. */
  load(): JournalLine[] {
    if (!existsSync(this.journalPath)) return [];
    const out: JournalLine[] = [];
    for (const line of readFileSync(this.journalPath, 'utf8').split('\n')) {
      if (line.trim() === '') continue;
      try {
        const parsed: unknown = JSON.parse(line);
        if (isJournalLine(parsed)) out.push(parsed);
      } catch {
        // Only the last line can be torn; anything else unparseable is skipped too rather than
        // refusing to start, since the journal is a debugging aid, not a database.
      }
    }
    return out;
  }

  record(accountId: string, node: EntryNode): void {
    if (this.closed) return;
    this.fd ??= openSync(this.journalPath, 'a');
    writeSync(this.fd, `${JSON.stringify({ a: accountId, n: node })}\n`);
  }

  put(contentHash: string, bytes: Buffer): void {
    if (this.closed) return;
    const dir = join(this.dir, 'blobs', contentHash.slice(0, 2));
    const path = join(dir, contentHash);
    if (existsSync(path)) return;
    mkdirSync(dir, { recursive: true });
    // Write-then-rename, so a reader never sees half a blob under its final name.
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, bytes);
    renameSync(tmp, path);
  }

  get(contentHash: string): Buffer | undefined {
    if (!/^[0-9a-f]{64}$/.test(contentHash)) return undefined;
    const path = join(this.dir, 'blobs', contentHash.slice(0, 2), contentHash);
    return existsSync(path) ? readFileSync(path) : undefined;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    this.closed = true;
  }
}
