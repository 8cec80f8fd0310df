import { BLOCK_SIZE, blockDigests, ContentHasher, contentHashOfBlocks } from './content-hash.js';
import type { SessionInfo } from './types.js';
import { dropboxTime, newOpaqueId, type Tagged } from './wire.js';

const BLOCK = BLOCK_SIZE;

interface Piece {
  length: number;
  digests: Buffer[];
  bytes: Buffer | undefined;
}

export interface SessionPayload {
  size: number;
  contentHash: string;
  content: Buffer | undefined;
}

const tag = (t: string): Tagged => ({ '.tag': t });

/**
 * One upload session. Sequential sessions take bytes in order at `offset`; concurrent ones take
 * pieces at multiples of 4 MiB in any order, each a whole number of 4 MiB blocks except the
 * closing one, so the file's content hash is the block digests of the pieces in offset order.
 */
export class UploadSession {
  state: 'open' | 'closed' | 'committed' | 'expired' = 'open';
  /** A finish or batch is committing it; other calls must not touch it meanwhile. */
  committing = false;
  bytesReceived = 0;
  requests = 0;
  path: string | undefined;
  private sequentialOffset = 0;
  private readonly hasher = new ContentHasher();
  private chunks: Buffer[] = [];
  private pieces = new Map<number, Piece>();
  /** Concurrent: end of the closing piece, i.e. the file size. */
  private closedEnd: number | undefined;
  /** Concurrent: sum of piece lengths, kept apart from the pieces so release() doesn't lose it. */
  private concurrentBytes = 0;

  constructor(
    readonly id: string,
    readonly accountId: string,
    readonly type: 'sequential' | 'concurrent',
    readonly createdMs: number,
    private readonly keep: boolean,
  ) {}

  /** Bytes accepted so far: the next offset of a sequential session, the sum of a concurrent one's pieces. */
  get offset(): number {
    return this.type === 'sequential' ? this.sequentialOffset : this.concurrentBytes;
  }

  /** Where a finish's cursor must point: the sequential offset, or the closed size of a concurrent session. */
  get finishOffset(): number | undefined {
    return this.type === 'sequential' ? this.sequentialOffset : this.closedEnd;
  }

  note(bytes: number): void {
    this.bytesReceived += bytes;
    this.requests++;
  }

  /** Adds bytes, or returns the UploadSessionAppendError (which finish wraps in lookup_failed). */
  append(offset: number, bytes: Buffer, close: boolean, maxFileBytes: number): Tagged | undefined {
    if (this.type === 'sequential') {
      if (this.state !== 'open' || this.committing) return tag('closed');
      if (offset !== this.sequentialOffset)
        return { '.tag': 'incorrect_offset', correct_offset: this.sequentialOffset };
      if (offset + bytes.length > maxFileBytes) return tag('too_large');
      this.hasher.update(bytes);
      if (this.keep && bytes.length > 0) this.chunks.push(bytes);
      this.sequentialOffset += bytes.length;
      if (close) this.state = 'closed';
      return undefined;
    }
    if (this.state === 'committed' || this.committing) return tag('closed');
    if (offset % BLOCK !== 0) return tag('concurrent_session_invalid_offset');
    if (!close && bytes.length % BLOCK !== 0) return tag('concurrent_session_invalid_data_size');
    const end = offset + bytes.length;
    // A second close, or data past the closing piece: the session's size is already fixed.
    if (this.closedEnd !== undefined && (close || end > this.closedEnd)) return tag('closed');
    if (end > maxFileBytes) return tag('too_large');
    for (const [o, p] of this.pieces) {
      const overlaps = o !== offset && o < end && offset < o + p.length;
      if (overlaps || (close && o + p.length > end)) return tag('concurrent_session_invalid_offset');
    }
    if (bytes.length > 0 || close) {
      // A piece sent again at the same offset (a retry) replaces the first copy.
      this.concurrentBytes += bytes.length - (this.pieces.get(offset)?.length ?? 0);
      this.pieces.set(offset, {
        length: bytes.length,
        digests: blockDigests(bytes),
        bytes: this.keep ? bytes : undefined,
      });
    }
    if (close) {
      this.closedEnd = end;
      this.state = 'closed';
    }
    return undefined;
  }

  /** Concurrent pieces in offset order, or why they don't make a whole file yet. */
  private layout(): [number, Piece][] | Tagged {
    if (this.closedEnd === undefined) return tag('concurrent_session_not_closed');
    const ordered = [...this.pieces.entries()].sort((a, b) => a[0] - b[0]);
    let at = 0;
    for (const [o, p] of ordered) {
      if (o !== at) return tag('concurrent_session_missing_data');
      at += p.length;
    }
    return at === this.closedEnd ? ordered : tag('concurrent_session_missing_data');
  }

  /** The UploadSessionFinishError that keeps this session from being committed, if any (cheap: builds nothing). */
  unfinished(): Tagged | undefined {
    if (this.type === 'sequential') return undefined;
    const layout = this.layout();
    return Array.isArray(layout) ? undefined : layout;
  }

  /** The file to commit, or the UploadSessionFinishError that says why there is none yet. */
  payload(): SessionPayload | Tagged {
    if (this.type === 'sequential') {
      const content = this.keep ? Buffer.concat(this.chunks) : undefined;
      return { size: this.sequentialOffset, contentHash: this.hasher.digest(), content };
    }
    const ordered = this.layout();
    if (!Array.isArray(ordered)) return ordered;
    const content = this.keep ? Buffer.concat(ordered.map(([, p]) => p.bytes ?? Buffer.alloc(0))) : undefined;
    return {
      size: this.concurrentBytes,
      contentHash: contentHashOfBlocks(ordered.flatMap(([, p]) => p.digests)),
      content,
    };
  }

  markCommitted(path: string): void {
    this.state = 'committed';
    this.path = path;
    this.release();
  }

  /** Drops the data; what remains is the record `sessions()` reports. */
  release(): void {
    this.chunks = [];
    this.pieces = new Map();
  }

  info(): SessionInfo {
    return {
      sessionId: this.id,
      accountId: this.accountId,
      type: this.type,
      state: this.state,
      offset: this.offset,
      bytesReceived: this.bytesReceived,
      requests: this.requests,
      createdAt: dropboxTime(new Date(this.createdMs)),
      ...(this.path !== undefined ? { path: this.path } : {}),
    };
  }
}

export class SessionStore {
  private readonly sessions = new Map<string, UploadSession>();

  constructor(
    public ttlMs: number,
    private readonly keep: boolean,
  ) {}

  create(accountId: string, type: 'sequential' | 'concurrent'): UploadSession {
    const session = new UploadSession(`pid_upload_session:${newOpaqueId(30)}`, accountId, type, Date.now(), this.keep);
    this.sessions.set(session.id, session);
    return session;
  }

  /** The account's session, whatever its state; undefined for unknown ids and other accounts' sessions. */
  get(accountId: string, id: string): UploadSession | undefined {
    const s = this.sessions.get(id);
    if (!s || s.accountId !== accountId) return undefined;
    if (s.state !== 'committed' && s.state !== 'expired' && !s.committing && Date.now() - s.createdMs > this.ttlMs) {
      s.state = 'expired';
      s.release();
    }
    return s;
  }

  /** A session that may still take data or be finished: not expired, committed or being committed. */
  live(accountId: string, id: string): UploadSession | undefined {
    const s = this.get(accountId, id);
    return s && s.state !== 'expired' && s.state !== 'committed' && !s.committing ? s : undefined;
  }

  info(id: string): SessionInfo | undefined {
    return this.sessions.get(id)?.info();
  }

  list(accountId?: string): SessionInfo[] {
    return [...this.sessions.values()]
      .filter((s) => accountId === undefined || s.accountId === accountId)
      .map((s) => s.info());
  }
}
