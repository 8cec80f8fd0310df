import type { ItemKind } from '../db/items.js';
import { DEFAULT_PATH_TEMPLATE, type Placeholder } from '../db/path-template.js';
import { DEFAULT_TIME_ZONE, localDateTime } from '../db/time-zone.js';

/** The folder each kind of item goes into, as operators know it from the old archiver. */
const KIND_FOLDER: Record<ItemKind, string> = {
  call_recording: 'Call Recordings',
  voicemail: 'Voicemail',
  fax: 'Fax',
  sms: 'SMS',
};

const FILE_EXTENSION: Record<ItemKind, string> = {
  call_recording: 'mp3',
  voicemail: 'mp3',
  fax: 'pdf',
  sms: 'txt',
};

/** Dropbox rejects path components longer than this (409 malformed_path). */
const MAX_COMPONENT_LENGTH = 255;
/** Names Dropbox refuses to store (409 disallowed_name), compared case-insensitively. */
const DISALLOWED_NAMES = new Set(['desktop.ini', 'thumbs.db', '.ds_store', 'icon\r', '.dropbox', '.dropbox.attr']);

export interface PathSubject {
  id: string;
  kind: ItemKind;
  occurredAt: Date;
  metadata: Record<string, unknown>;
  folderRoot: string;
  /** The customer's layout; null for the default. */
  pathTemplate?: string | null;
  /** The customer's IANA time zone, in which {date} and {time} are read. @default UTC */
  timeZone?: string | undefined;
}

/**
 * One path component made safe for Dropbox: no slashes, control, format or reserved characters,
 * no trailing dots or spaces, at most 255 characters, never a disallowed name. Deterministic.
 */
export function sanitizeComponent(raw: string): string {
  // Format characters (Unicode Cf) are dropped: bidirectional overrides and isolates (U+202A-202E,
  // U+2066-2069), marks (U+200E, U+200F, U+061C) and zero-width ones can make a name display as
  // another, e.g. "call\u202Epm.exe" as "callexe.mp".
  let name = raw.normalize('NFC').replace(/\p{Cf}/gu, '');
  // eslint-disable-next-line no-control-regex
  name = name.replace(/[\u0000-\u001f\u007f/\\:*?"<>|]/g, '_');
  // Characters outside the Basic Multilingual Plane (emoji) are refused in paths.
  name = name.replace(/[\u{10000}-\u{10ffff}]/gu, '_');
  name = name.trim().replace(/[. ]+$/, '');
  if (name === '' || name === '.' || name === '..') name = '_';
  if (DISALLOWED_NAMES.has(name.toLowerCase())) name = `_${name}`;
  return name.length > MAX_COMPONENT_LENGTH ? name.slice(0, MAX_COMPONENT_LENGTH) : name;
}

function metadataText(metadata: Record<string, unknown>, key: string): string {
  const value = metadata[key];
  return typeof value === 'string' || typeof value === 'number' ? String(value) : '';
}

/** Fills placeholders; an empty one drops the "_" before it, so missing parties leave no "__". */
function fill(component: string, values: Record<Placeholder, string>): string {
  return component.replace(/(_?)\{(\w+)\}/g, (_m, sep: string, name: string) => {
    const value = values[name as Placeholder];
    return value === '' ? '' : `${sep}${value}`;
  });
}

/**
 * Where an item lives in its customer's Dropbox. A pure function of the item and its customer's
 * template, so a retried or duplicated upload lands on the same path and Dropbox treats it as
 * the same file. {date} and {time} are when the item occurred in the customer's time zone (UTC by
 * default), so a day folder holds the same items as the day's manifest (activities/manifests.ts).
 */
export function remotePathFor(item: PathSubject): string {
  const template = item.pathTemplate ?? DEFAULT_PATH_TEMPLATE;
  const local = localDateTime(item.occurredAt, item.timeZone ?? DEFAULT_TIME_ZONE);
  const values: Record<Placeholder, string> = {
    root: '',
    extension: metadataText(item.metadata, 'extension') || 'unassigned',
    date: local.date,
    kind: KIND_FOLDER[item.kind],
    time: local.time,
    from: metadataText(item.metadata, 'from'),
    to: metadataText(item.metadata, 'to'),
    id: item.id,
    ext: FILE_EXTENSION[item.kind],
  };
  const parts: string[] = [];
  const components = template.split('/').filter((c) => c !== '');
  for (const [i, component] of components.entries()) {
    if (component === '{root}') {
      parts.push(
        ...item.folderRoot
          .split('/')
          .filter((p) => p !== '')
          .map(sanitizeComponent),
      );
    } else if (i === components.length - 1) {
      parts.push(fileName(component, values));
    } else {
      parts.push(sanitizeComponent(fill(component, values)));
    }
  }
  return '/' + parts.join('/');
}

/** The kinds that get a metadata sidecar: everything but SMS, whose text is its own record. */
const SIDECAR_KINDS: ReadonlySet<ItemKind> = new Set(['call_recording', 'voicemail', 'fax']);

/**
 * Where an item's metadata sidecar lives: its Dropbox path with the item's extension replaced by
 * `.json` (or `.json` added, for a layout without one), so it sorts next to the item. A pure function
 * of the item, as its path is; undefined for SMS, which has none.
 */
export function sidecarPathFor(item: PathSubject): string | undefined {
  if (!SIDECAR_KINDS.has(item.kind)) return undefined;
  const path = remotePathFor(item);
  const slash = path.lastIndexOf('/');
  const name = path.slice(slash + 1);
  // Only the kind's own extension is replaced: a dot elsewhere in the name may belong to a party.
  const ext = `.${FILE_EXTENSION[item.kind]}`;
  const stem = name.endsWith(ext) ? name.slice(0, -ext.length) : name;
  // Trimmed from the front, as the id is at the end of the name and keeps it unique.
  const sidecar = `${stem.slice(Math.max(0, stem.length + '.json'.length - MAX_COMPONENT_LENGTH))}.json`;
  return path.slice(0, slash + 1) + sidecar;
}

/** The Dropbox folder every item of a customer with this folder root lands under ("" for the Dropbox's root), as remotePathFor writes it. */
export function archiveFolderFor(folderRoot: string): string {
  const parts = folderRoot
    .split('/')
    .filter((p) => p !== '')
    .map(sanitizeComponent);
  return parts.length === 0 ? '' : '/' + parts.join('/');
}

/** The file name, trimmed before the id when too long, so it stays unique per item. */
function fileName(component: string, values: Record<Placeholder, string>): string {
  let at = component.indexOf('{id}');
  // Keep the separator before the id with the id, so trimming never glues text onto it.
  if (component[at - 1] === '_') at -= 1;
  const headText = fill(component.slice(0, at), values);
  const head = headText === '' ? '' : sanitizeComponent(headText);
  const tail = sanitizeComponent(fill(component.slice(at), values));
  return head.slice(0, MAX_COMPONENT_LENGTH - tail.length) + tail;
}

/**
 * How an item's upload writes its path: `add`, which never replaces another file (a different file
 * there is a conflict, so the item fails visibly), except for an item a verification re-queued
 * because its file was altered or missing, which overwrites what is at its own path.
 */
export function writeModeFor(item: { requeueReason: string | null }): { '.tag': 'add' } | { '.tag': 'overwrite' } {
  return item.requeueReason === null ? { '.tag': 'add' } : { '.tag': 'overwrite' };
}
