import { describe, expect, it } from 'vitest';
import { remotePathFor, sanitizeComponent, sidecarPathFor } from '../../activities/paths.js';
import { DEFAULT_PATH_TEMPLATE, validateFolderRoot, validatePathTemplate } from '../../db/path-template.js';
import { canonicalTimeZone } from '../../db/time-zone.js';

const item = {
  id: '42',
  kind: 'call_recording' as const,
  occurredAt: new Date('2026-11-03T14:05:09.123Z'),
  metadata: { extension: '101', from: '+15551234567', to: '+15557654321' },
  folderRoot: '/Archiver',
};

describe('remote path', () => {
  it('follows the layout operators know', () => {
    expect(remotePathFor(item)).toBe(
      '/Archiver/101/2026-11-03/Call Recordings/140509_+15551234567_+15557654321_42.mp3',
    );
  });

  it('is a pure function of the item', () => {
    expect(remotePathFor({ ...item })).toBe(remotePathFor(item));
    expect(remotePathFor({ ...item, id: '43' })).not.toBe(remotePathFor(item));
  });

  it('puts each kind in its folder with its extension', () => {
    expect(remotePathFor({ ...item, kind: 'sms' })).toMatch(/\/SMS\/[^/]+_42\.txt$/);
    expect(remotePathFor({ ...item, kind: 'fax' })).toMatch(/\/Fax\/[^/]+_42\.pdf$/);
    expect(remotePathFor({ ...item, kind: 'voicemail' })).toMatch(/\/Voicemail\/[^/]+_42\.mp3$/);
  });

  it('files items without an extension under "unassigned"', () => {
    expect(remotePathFor({ ...item, metadata: {} })).toBe(
      '/Archiver/unassigned/2026-11-03/Call Recordings/140509_42.mp3',
    );
  });

  it('keeps long names under 255 characters per component without losing the id', () => {
    const path = remotePathFor({ ...item, metadata: { from: 'x'.repeat(400), to: 'y'.repeat(400) } });
    const name = path.split('/').at(-1) ?? '';
    expect(name.length).toBeLessThanOrEqual(255);
    expect(name.endsWith('_42.mp3')).toBe(true);
  });

  it('removes characters Dropbox rejects from metadata and the folder root', () => {
    const path = remotePathFor({
      ...item,
      folderRoot: '/Acme: Calls?/',
      metadata: { extension: 'a/b\\c', from: 'x\u0001y', to: '😀' },
    });
    expect(path).toBe('/Acme_ Calls_/a_b_c/2026-11-03/Call Recordings/140509_x_y___42.mp3');
  });
});

describe('sidecar path', () => {
  it("is the item's path with its extension replaced by .json", () => {
    expect(sidecarPathFor(item)).toBe(
      '/Archiver/101/2026-11-03/Call Recordings/140509_+15551234567_+15557654321_42.json',
    );
    expect(sidecarPathFor({ ...item, kind: 'fax' })).toMatch(/\/Fax\/[^/]+_42\.json$/);
    expect(sidecarPathFor({ ...item, kind: 'voicemail' })).toMatch(/\/Voicemail\/[^/]+_42\.json$/);
  });

  it('is none for SMS', () => {
    expect(sidecarPathFor({ ...item, kind: 'sms' })).toBeUndefined();
  });

  it('adds .json to a layout without an extension, and never cuts at a dot of a party', () => {
    const dotted = { ...item, metadata: { ...item.metadata, from: 'a.b' } };
    expect(sidecarPathFor({ ...dotted, pathTemplate: '{root}/{from}_{id}' })).toBe('/Archiver/a.b_42.json');
    expect(sidecarPathFor({ ...dotted, pathTemplate: '{root}/{id}_{from}' })).toBe('/Archiver/42_a.b.json');
  });

  it('stays under 255 characters and keeps the id', () => {
    const name =
      sidecarPathFor({ ...item, metadata: { from: 'x'.repeat(400) } })
        ?.split('/')
        .at(-1) ?? '';
    expect(name.length).toBeLessThanOrEqual(255);
    expect(name.endsWith('_42.json')).toBe(true);
  });
});

describe('sanitizeComponent', () => {
  it('never yields a name Dropbox disallows', () => {
    expect(sanitizeComponent('desktop.ini')).toBe('_desktop.ini');
    expect(sanitizeComponent('Thumbs.db')).toBe('_Thumbs.db');
    expect(sanitizeComponent('...')).toBe('_');
    expect(sanitizeComponent('')).toBe('_');
    expect(sanitizeComponent('name. ')).toBe('name');
  });

  it('drops bidirectional and other format characters, which can make a name display as another', () => {
    expect(sanitizeComponent('invoice\u202Efdp.exe')).toBe('invoicefdp.exe');
    for (const control of ['\u202A', '\u202B', '\u202C', '\u202D', '\u202E', '\u2066', '\u2067', '\u2068', '\u2069'])
      expect(sanitizeComponent(`a${control}b`), JSON.stringify(control)).toBe('ab');
    for (const mark of ['\u200E', '\u200F', '\u061C', '\u200B', '\u200D', '\u2060', '\uFEFF', '\u00AD'])
      expect(sanitizeComponent(`a${mark}b`), JSON.stringify(mark)).toBe('ab');
    expect(sanitizeComponent('\u202E\u200B')).toBe('_');
    expect(
      remotePathFor({
        ...item,
        metadata: { extension: '1\u200B01', from: '+1555\u202E1234', to: '\u2066+1555\u2069' },
      }),
    ).toBe('/Archiver/101/2026-11-03/Call Recordings/140509_+15551234_+1555_42.mp3');
  });
});

describe('customer path templates', () => {
  it('lays items out as the customer chose', () => {
    expect(remotePathFor({ ...item, pathTemplate: '{root}/{kind}/{date}/{id}.{ext}' })).toBe(
      '/Archiver/Call Recordings/2026-11-03/42.mp3',
    );
    expect(
      remotePathFor({ ...item, folderRoot: '/Acme/Archive', pathTemplate: '{root}/{extension}/{id}_{from}.{ext}' }),
    ).toBe('/Acme/Archive/101/42_+15551234567.mp3');
  });

  it('drops the separator before a missing field instead of leaving "__"', () => {
    expect(remotePathFor({ ...item, metadata: { to: '+1555' } })).toBe(
      '/Archiver/unassigned/2026-11-03/Call Recordings/140509_+1555_42.mp3',
    );
  });

  it('refuses templates that could put two items on one path or that Dropbox cannot store', () => {
    expect(() => validatePathTemplate('{root}/{date}/{time}.{ext}')).toThrow(/must contain \{id\}/);
    expect(() => validatePathTemplate('{root}/{id}/{date}.{ext}')).toThrow(/must contain \{id\} in its file name/);
    expect(() => validatePathTemplate('{root}/{customer}/{id}')).toThrow(/unknown placeholder \{customer\}/);
    expect(() => validatePathTemplate('{date}/{root}/{id}')).toThrow(/\{root\} may only be the first/);
    expect(() => validatePathTemplate('{root}//{id}')).toThrow(/empty component/);
    expect(() => validatePathTemplate('{root}/../{id}.{ext}')).toThrow(/may not contain a "\.\." component/);
    expect(() => validatePathTemplate('{root}/./{id}.{ext}')).toThrow(/may not contain a "\." component/);
    expect(() => validatePathTemplate('{root}/a:b/{id}.{ext}')).toThrow(/reserves/);
    expect(() => validatePathTemplate('{root}/{date}/{id}.')).toThrow(/end with "\."/);
    expect(() => validatePathTemplate(DEFAULT_PATH_TEMPLATE)).not.toThrow();
  });

  it('refuses folder roots that are relative, empty, hold . or .., or would be rewritten', () => {
    expect(() => validateFolderRoot('Archiver')).toThrow(/must be absolute/);
    expect(() => validateFolderRoot('/')).toThrow(/empty component/);
    expect(() => validateFolderRoot('/a//b')).toThrow(/empty component/);
    expect(() => validateFolderRoot('/a/')).toThrow(/empty component/);
    expect(() => validateFolderRoot('/a/../b')).toThrow(/"\.\." component/);
    expect(() => validateFolderRoot('/a/\u202Eb')).toThrow(/reserves/);
    expect(() => validateFolderRoot(`/${'x'.repeat(256)}`)).toThrow(/longer than 255/);
    expect(() => validateFolderRoot('/Acme Dental/Archive 2026')).not.toThrow();
  });
});

describe("the customer's time zone", () => {
  const late = { ...item, occurredAt: new Date('2026-03-01T23:30:00Z') };

  it('names the day and time the item occurred on there', () => {
    expect(remotePathFor(late)).toBe(
      '/Archiver/101/2026-03-01/Call Recordings/233000_+15551234567_+15557654321_42.mp3',
    );
    // NZDT, UTC+13: already the next day.
    expect(remotePathFor({ ...late, timeZone: 'Pacific/Auckland' })).toBe(
      '/Archiver/101/2026-03-02/Call Recordings/123000_+15551234567_+15557654321_42.mp3',
    );
    // PST, UTC-8.
    expect(remotePathFor({ ...late, timeZone: 'America/Los_Angeles' })).toBe(
      '/Archiver/101/2026-03-01/Call Recordings/153000_+15551234567_+15557654321_42.mp3',
    );
    expect(sidecarPathFor({ ...late, timeZone: 'Pacific/Auckland' })).toBe(
      '/Archiver/101/2026-03-02/Call Recordings/123000_+15551234567_+15557654321_42.json',
    );
  });

  it('follows daylight saving time, and an item just before local midnight stays on its day', () => {
    // Los Angeles goes to PDT (UTC-7) at 2026-03-08 10:00Z.
    expect(
      remotePathFor({ ...item, occurredAt: new Date('2026-03-08T09:59:59Z'), timeZone: 'America/Los_Angeles' }),
    ).toMatch(/\/2026-03-08\/Call Recordings\/015959_/);
    expect(
      remotePathFor({ ...item, occurredAt: new Date('2026-03-08T10:00:00Z'), timeZone: 'America/Los_Angeles' }),
    ).toMatch(/\/2026-03-08\/Call Recordings\/030000_/);
    expect(
      remotePathFor({ ...item, occurredAt: new Date('2026-03-09T06:59:59Z'), timeZone: 'America/Los_Angeles' }),
    ).toMatch(/\/2026-03-08\/Call Recordings\/235959_/);
    expect(
      remotePathFor({ ...item, occurredAt: new Date('2026-03-09T07:00:00Z'), timeZone: 'America/Los_Angeles' }),
    ).toMatch(/\/2026-03-09\/Call Recordings\/000000_/);
  });

  it('is an IANA name, stored as Intl spells it; anything else is refused naming the value and an example', () => {
    expect(canonicalTimeZone('UTC')).toBe('UTC');
    expect(canonicalTimeZone('europe/berlin')).toBe('Europe/Berlin');
    expect(canonicalTimeZone('US/Pacific')).toBe('America/Los_Angeles');
    for (const bad of ['Mars/Olympus', '+05:00', 'UTC+5', '', 'Europe/Berlin ', '../etc/passwd'])
      expect(() => canonicalTimeZone(bad), JSON.stringify(bad)).toThrow(
        `"${bad}" is not an IANA time zone name; give one like Europe/Berlin`,
      );
  });
});
