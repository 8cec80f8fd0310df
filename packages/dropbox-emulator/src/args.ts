import type { WriteMode } from './store.js';
import { badInput, DROPBOX_TIME, type ApiFailure } from './wire.js';

/**
 * A decoded argument object plus where it came from, so 400 texts name the header or the body
 * and, for nested structs, the field path ("commit.path: …").
 */
export class Args {
  constructor(
    readonly route: string,
    private readonly where: string,
    private readonly obj: Record<string, unknown>,
    private readonly prefix = '',
  ) {}

  static parse(route: string, where: string, text: string): Args {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw badInput(route, `${where}: could not decode input as JSON`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw badInput(
        route,
        `${where}: expected object, got ${Array.isArray(value) ? 'list' : value === null ? 'null' : typeof value}`,
      );
    }
    return new Args(route, where, value as Record<string, unknown>);
  }

  /** Routes without arguments take an empty body or `null`. */
  static none(route: string, where: string, text: string): Args {
    if (text.trim() !== '' && text.trim() !== 'null')
      throw badInput(route, `${where}: expected null, got ${JSON.stringify(text.slice(0, 40))}`);
    return new Args(route, where, {});
  }

  fail(detail: string): ApiFailure {
    return badInput(this.route, `${this.where}: ${this.prefix}${detail}`);
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
    if (typeof v !== 'number' || !Number.isInteger(v))
      throw this.fail(`${name}: expected integer, got ${JSON.stringify(v)}`);
    if (v < min || v > max) throw this.fail(`${name}: ${v} is not within the range [${min}, ${max}]`);
    return v;
  }

  /** A nested struct; its failures name the field path. */
  struct(name: string): Args {
    const v = this.obj[name];
    if (v === undefined || v === null) throw this.fail(`missing required field '${name}'`);
    if (typeof v !== 'object' || Array.isArray(v))
      throw this.fail(`${name}: expected object, got ${Array.isArray(v) ? 'list' : typeof v}`);
    return new Args(this.route, this.where, v as Record<string, unknown>, `${this.prefix}${name}.`);
  }

  /** A list of structs with at most `max` items. */
  structs(name: string, max: number): Args[] {
    const v = this.obj[name];
    if (v === undefined || v === null) throw this.fail(`missing required field '${name}'`);
    if (!Array.isArray(v)) throw this.fail(`${name}: expected list, got ${typeof v}`);
    if (v.length > max) throw this.fail(`${name}: list has more than ${max} items`);
    return v.map((item: unknown, i) => {
      if (typeof item !== 'object' || item === null || Array.isArray(item))
        throw this.fail(`${name}[${i}]: expected object`);
      return new Args(this.route, this.where, item as Record<string, unknown>, `${this.prefix}${name}[${i}].`);
    });
  }

  /** A void-tagged union member, in either spelling ("x" or {".tag":"x"}); undefined when unset. */
  voidTag(name: string, allowed: readonly string[]): string | undefined {
    const raw = this.obj[name];
    if (raw === undefined || raw === null) return undefined;
    const tag =
      typeof raw === 'string' ? raw : typeof raw === 'object' ? (raw as { '.tag'?: unknown })['.tag'] : undefined;
    if (typeof tag === 'string' && allowed.includes(tag)) return tag;
    throw this.fail(`${name}: unknown tag ${JSON.stringify(tag ?? raw)}`);
  }

  /** A 64-hex content_hash, lower-cased; undefined when unset. */
  contentHash(): string | undefined {
    const v = this.string('content_hash', true);
    if (v !== undefined && v.length !== 64) throw this.fail(`content_hash: '${v}' must be exactly 64 characters long`);
    return v?.toLowerCase();
  }
}

export const WRITE_PATH_PATTERN = String.raw`(/(.|[\r\n])*)|(ns:[0-9]+(/(.|[\r\n])*)?)|(id:.*)`;
export const LIST_PATH_PATTERN = String.raw`(/(.|[\r\n])*)?|id:.*|(ns:[0-9]+(/.*)?)`;
export const READ_PATH_PATTERN = String.raw`(/(.|[\r\n])*|id:.*)|(rev:[0-9a-f]{9,})|(ns:[0-9]+(/.*)?)`;

/** Only "/..." paths are stored; `id:`/`ns:` forms match Dropbox's pattern but aren't emulated here. */
export function slashPath(args: Args, name: string, path: string, pattern: string): string {
  if (path.startsWith('/')) return path;
  if (/^(id:|ns:|rev:)/.test(path))
    throw args.fail(`${name}: the emulator supports only paths starting with "/", got '${path}'`);
  throw args.fail(`${name}: '${path}' did not match pattern '${pattern}'`);
}

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

export interface CommitInfo {
  path: string;
  mode: WriteMode;
  autorename: boolean;
  strictConflict: boolean;
  clientModified: string | undefined;
}

/** Dropbox's CommitInfo struct (files/upload's UploadArg extends it). */
export function parseCommitInfo(args: Args): CommitInfo {
  const path = slashPath(args, 'path', args.string('path'), WRITE_PATH_PATTERN);
  const mode = parseMode(args);
  const autorename = args.bool('autorename', false);
  const strictConflict = args.bool('strict_conflict', false);
  args.bool('mute', false); // only silences notifications; still type-checked like Dropbox
  const clientModified = args.string('client_modified', true);
  if (clientModified !== undefined && !DROPBOX_TIME.test(clientModified)) {
    throw args.fail(`client_modified: time data '${clientModified}' does not match format '%Y-%m-%dT%H:%M:%SZ'`);
  }
  return { path, mode, autorename, strictConflict, clientModified };
}
