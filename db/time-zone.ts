// A customer's time zone (customers.time_zone, migration 013): the zone whose days group its items,
// in the path template's {date} and in its day manifests. The check run before one is stored lives
// here, beside the customer record, so the CLI and the registry refuse a bad one alike; the day and
// time of an instant in the zone are computed here too, so the paths and the manifests agree.

export const DEFAULT_TIME_ZONE = 'UTC';

/** An IANA name (Area/Location, or UTC): not an offset such as +05:00, which Postgres reads as POSIX. */
const ZONE_NAME = /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/;

const formats = new Map<string, Intl.DateTimeFormat>();

function formatFor(timeZone: string): Intl.DateTimeFormat {
  let format = formats.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      hourCycle: 'h23',
    });
    formats.set(timeZone, format);
  }
  return format;
}

/**
 * The IANA name of `timeZone` as it is stored (`europe/berlin` and the alias `US/Pacific` give
 * `Europe/Berlin` and `America/Los_Angeles`).
 * @throws Error naming the value and giving an example, for a name that is not a known IANA zone
 */
export function canonicalTimeZone(timeZone: string): string {
  let resolved: string | undefined;
  if (ZONE_NAME.test(timeZone)) {
    try {
      resolved = formatFor(timeZone).resolvedOptions().timeZone;
    } catch (err) {
      if (!(err instanceof RangeError)) throw err;
    }
  }
  if (resolved === undefined)
    throw new Error(
      `"${timeZone}" is not an IANA time zone name; give one like Europe/Berlin, America/New_York or UTC`,
    );
  return resolved;
}

/** The calendar day and wall-clock time of `instant` in `timeZone`: `YYYY-MM-DD` and `HHMMSS`. */
export function localDateTime(instant: Date, timeZone: string): { date: string; time: string } {
  if (timeZone === DEFAULT_TIME_ZONE) {
    const iso = instant.toISOString();
    return { date: iso.slice(0, 10), time: iso.slice(11, 19).replaceAll(':', '') };
  }
  const part: Partial<Record<Intl.DateTimeFormatPartTypes, string>> = {};
  for (const { type, value } of formatFor(timeZone).formatToParts(instant)) part[type] = value;
  return {
    date: `${part.year}-${part.month}-${part.day}`,
    time: `${part.hour}${part.minute}${part.second}`,
  };
}
