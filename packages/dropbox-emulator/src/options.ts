import { createHash } from 'node:crypto';
import type { FileNode } from './store.js';
import type { StoredFile } from './types.js';

const MiB = 1024 * 1024;
/** Dropbox's per-request limit on upload routes. */
export const DEFAULT_MAX_REQUEST_BYTES = 150 * MiB;
/** Dropbox's largest file (2^41 − 2^22 bytes, files.stone). */
export const DEFAULT_MAX_FILE_BYTES = 2 ** 41 - 2 ** 22;
/** "Four hours", the lifetime of Dropbox's short-lived tokens. */
export const DEFAULT_ACCESS_TOKEN_TTL_SECONDS = 4 * 60 * 60;
export const DEFAULT_SESSION_TTL_SECONDS = 7 * 24 * 60 * 60;

/** Stable per token, shaped like a real account id ("dbid:" + 40 chars). */
export function deriveAccountId(token: string): string {
  return `dbid:AA${createHash('sha256').update(token).digest('base64url').slice(0, 38)}`;
}

export function toStoredFile(accountId: string, f: FileNode): StoredFile {
  return {
    accountId,
    pathLower: f.pathLower,
    pathDisplay: f.pathDisplay,
    size: f.size,
    contentHash: f.contentHash,
    rev: f.rev,
    id: f.id,
    serverModified: f.serverModified,
    writes: f.writes,
  };
}

export function positive(name: string, value: number | undefined, fallback: number, integer = true): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new RangeError(`${name} must be a positive ${integer ? 'integer' : 'number'}, got ${String(value)}`);
  }
  return value;
}

export function checkScopes(scopes: unknown): string[] | undefined {
  if (scopes === undefined) return undefined;
  if (!Array.isArray(scopes) || !scopes.every((s) => typeof s === 'string'))
    throw new TypeError('scopes must be a list of strings');
  return [...scopes];
}

/** Timers that can all be cut short at once, so stop() never waits for a commit latency or added latency. */
export class Sleeper {
  private readonly pending = new Set<() => void>();
  private stopped = false;

  sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.pending.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.pending.add(done);
    });
  }

  wakeAll(): void {
    this.stopped = true;
    for (const done of [...this.pending]) done();
  }
}
