import type { ItemKind } from './items.js';

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
}

/**
 * One path component made safe for Dropbox: no slashes, control or reserved characters, no
 * trailing dots or spaces, at most 255 characters, never a disallowed name. Deterministic.
 */
export function sanitizeComponent(raw: string): string {
  // eslint-disable-next-line no-control-regex
  let name = raw.normalize('NFC').replace(/[\u0000-\u001f\u007f/\\:*?"<>|]/g, '_');
  // Characters outside the Basic Multilingual Plane (emoji) are refused in paths.
  name = name.replace(/[\u{10000}-\u{10ffff}]/gu, '_');
  name = name.trim().replace(/[. ]+$/, '');
  if (name === '' || name === '.' || name === '..') name = '_';
  if (DISALLOWED_NAMES.has(name.toLowerCase())) name = `_${name}`;
  return name.length > MAX_COMPONENT_LENGTH ? name.slice(0, MAX_COMPONENT_LENGTH) : name;
}

function metadataText(metadata: Record<string, unknown>, key: string): string | undefined {
  const value = metadata[key];
  return typeof value === 'string' || typeof value === 'number' ? String(value) : undefined;
}

/**
 * Where an item lives in its customer's Dropbox. A pure function of the item, so a retried or
 * duplicated upload lands on the same path and Dropbox treats it as the same file:
 * `/<root>/<extension>/<YYYY-MM-DD>/<Kind>/<HHMMSS>_<from>_<to>_<itemId>.<ext>` (UTC).
 */
export function remotePathFor(item: PathSubject): string {
  const iso = item.occurredAt.toISOString();
  const day = iso.slice(0, 10);
  const time = iso.slice(11, 19).replaceAll(':', '');
  const extension = metadataText(item.metadata, 'extension') ?? 'unassigned';
  const parties = [metadataText(item.metadata, 'from'), metadataText(item.metadata, 'to')].filter((p) => p !== undefined);
  const suffix = `_${item.id}.${FILE_EXTENSION[item.kind]}`;
  // Trim the descriptive part, never the id, so long names stay unique per item.
  const stem = sanitizeComponent([time, ...parties].join('_')).slice(0, MAX_COMPONENT_LENGTH - suffix.length);
  const root = item.folderRoot.split('/').filter((part) => part !== '').map(sanitizeComponent);
  return '/' + [...root, sanitizeComponent(extension), day, KIND_FOLDER[item.kind], stem + suffix].join('/');
}
