import { continueListing, decodeCursor, startListing } from './listing.js';
import { type EmulatorStore, fileMetadata, splitPath, taggedMetadata, type WriteMode } from './store.js';
import { badInput, DROPBOX_TIME, newOpaqueId, routeError, type ApiFailure, type ReadBody } from './wire.js';

/** A decoded argument object plus where it came from, so 400 texts name the header or the body. */
export class Args {
  constructor(
    readonly route: string,
    private readonly where: string,
    private readonly obj: Record<string, unknown>,
  ) {}

  static parse(route: string, where: string, text: string): Args {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw badInput(route, `${where}: could not decode input as JSON`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw badInput(route, `${where}: expected object, got ${Array.isArray(value) ? 'list' : typeof value}`);
    }
    return new Args(route, where, value as Record<string, unknown>);
  }

  fail(detail: string): ApiFailure {
    return badInput(this.route, `${this.where}: ${detail}`);
  }

  raw(name: string): unknown {
    return this.obj[name];
  }

  string(name: string): string;
  string(name: string, optional: true): string | undefined;
  string(name: string, optional = false): string | undefined {
    const v = this.obj[name];
    if (v === undefined || v === null) {
      if (optional) return undefined;
      throw this.fail(`missing required field '${name}'`);
    }
    if (typeof v !== 'string') throw this.fail(`${name}: expected string, got ${typeof v}`);
    return v;
  }

  bool(name: string, fallback: boolean): boolean {
    const v = this.obj[name];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') throw this.fail(`${name}: expected boolean, got ${typeof v}`);
    return v;
  }

  int(name: string, min: number, max: number): number | undefined {
    const v = this.obj[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v)) throw this.fail(`${name}: expected integer, got ${JSON.stringify(v)}`);
    if (v < min || v > max) throw this.fail(`${name}: ${v} is not within the range [${min}, ${max}]`);
    return v;
  }
}

export interface CallContext {
  route: string;
  accountId: string;
  args: Args;
  body: ReadBody;
  store: EmulatorStore;
}

export interface RouteSpec {
  /** "upload": args in Dropbox-API-Arg, raw bytes as body. "rpc": JSON args as body. */
  style: 'rpc' | 'upload';
  handler: (ctx: CallContext) => unknown;
}

const MAX_UPLOAD_BYTES = 150 * 1024 * 1024;
const DEFAULT_LIST_LIMIT = 500;
const WRITE_PATH_PATTERN = String.raw`(/(.|[\r\n])*)|(ns:[0-9]+(/(.|[\r\n])*)?)|(id:.*)`;
const LIST_PATH_PATTERN = String.raw`(/(.|[\r\n])*)?|id:.*|(ns:[0-9]+(/.*)?)`;

function parseMode(args: Args): WriteMode {
  const raw = args.raw('mode');
  if (raw === undefined || raw === null) return { kind: 'add' };
  // Void union members may be sent as a bare string; `update` carries a rev, so it can't be.
  const tag = typeof raw === 'string' ? raw : (raw as { '.tag'?: unknown })['.tag'];
  if (tag === 'add' || tag === 'overwrite') return { kind: tag };
  if (tag === 'update' && typeof raw === 'object') {
    const rev = (raw as { update?: unknown }).update;
    if (typeof rev === 'string' && /^[0-9a-f]{9,}$/.test(rev)) return { kind: 'update', rev };
    throw args.fail(`mode: update: expected a rev of at least 9 lowercase hex digits`);
  }
  throw args.fail(`mode: unknown tag ${JSON.stringify(tag ?? raw)}`);
}

/** Only "/..." paths are stored; `id:`/`ns:` forms match Dropbox's pattern but aren't emulated here. */
function slashPath(args: Args, path: string, pattern: string): string {
  if (path.startsWith('/')) return path;
  if (/^(id:|ns:)/.test(path)) throw args.fail(`path: the emulator supports only paths starting with "/", got '${path}'`);
  throw args.fail(`path: '${path}' did not match pattern '${pattern}'`);
}

function upload({ args, body, store, accountId }: CallContext): unknown {
  const path = slashPath(args, args.string('path'), WRITE_PATH_PATTERN);
  const mode = parseMode(args);
  const autorename = args.bool('autorename', false);
  const strictConflict = args.bool('strict_conflict', false);
  args.bool('mute', false); // only silences notifications; still type-checked like Dropbox
  const clientModified = args.string('client_modified', true);
  if (clientModified !== undefined && !DROPBOX_TIME.test(clientModified)) {
    throw args.fail(`client_modified: time data '${clientModified}' does not match format '%Y-%m-%dT%H:%M:%SZ'`);
  }
  const expectedHash = args.string('content_hash', true);
  if (expectedHash !== undefined && expectedHash.length !== 64) {
    throw args.fail(`content_hash: '${expectedHash}' must be exactly 64 characters long`);
  }
  if (body.size > MAX_UPLOAD_BYTES) throw routeError({ '.tag': 'payload_too_large' });
  const contentHash = body.contentHash as string;
  if (expectedHash !== undefined && expectedHash.toLowerCase() !== contentHash) {
    throw routeError({ '.tag': 'content_hash_mismatch' });
  }
  const result = store.write(accountId, { path, mode, autorename, strictConflict, clientModified, size: body.size, contentHash });
  if (!result.ok) throw routeError({ '.tag': 'path', reason: result.reason, upload_session_id: newOpaqueId() });
  return fileMetadata(result.file);
}

function getMetadata({ args, store, accountId }: CallContext): unknown {
  const raw = args.string('path');
  if (raw === '' || raw === '/') throw args.fail('path: The root folder is unsupported.');
  const path = raw.startsWith('id:') ? raw : slashPath(args, raw, WRITE_PATH_PATTERN);
  if (!path.startsWith('id:') && !splitPath(path)) {
    throw routeError({ '.tag': 'path', path: { '.tag': 'malformed_path', malformed_path: null } });
  }
  const node = store.lookup(accountId, path.toLowerCase());
  if (!node) throw routeError({ '.tag': 'path', path: { '.tag': 'not_found' } });
  return taggedMetadata(node);
}

function listFolder({ args, store, accountId }: CallContext): unknown {
  const raw = args.string('path');
  if (raw === '/') throw args.fail('path: Specify the root folder as an empty string rather than as "/".');
  const path = raw === '' || raw.startsWith('id:') ? raw : slashPath(args, raw, LIST_PATH_PATTERN);
  const recursive = args.bool('recursive', false);
  const limit = args.int('limit', 1, 2000) ?? DEFAULT_LIST_LIMIT;
  if (path.startsWith('/') && !splitPath(path)) {
    throw routeError({ '.tag': 'path', path: { '.tag': 'malformed_path', malformed_path: null } });
  }
  const node = store.lookup(accountId, path.toLowerCase());
  if (node === undefined) throw routeError({ '.tag': 'path', path: { '.tag': 'not_found' } });
  if (node?.kind === 'file') throw routeError({ '.tag': 'path', path: { '.tag': 'not_folder' } });
  return startListing(store.space(accountId), accountId, node?.pathLower ?? '', recursive, limit);
}

function listFolderContinue({ args, store, accountId }: CallContext): unknown {
  const state = decodeCursor(args.string('cursor'));
  if (!state || state.a !== accountId) throw args.fail('cursor: Invalid cursor');
  return continueListing(store.space(accountId), state);
}

export const ROUTES: ReadonlyMap<string, RouteSpec> = new Map<string, RouteSpec>([
  ['files/upload', { style: 'upload', handler: upload }],
  ['files/get_metadata', { style: 'rpc', handler: getMetadata }],
  ['files/list_folder', { style: 'rpc', handler: listFolder }],
  ['files/list_folder/continue', { style: 'rpc', handler: listFolderContinue }],
]);
