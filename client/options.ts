// Parsers for the CLI's option and argument values: each turns the operator's text into a checked
// value, or throws InvalidArgumentError, which commander reports naming the option. Every message
// names the option and what it allows, and nothing is stored or sent before all values pass.

import { InvalidArgumentError } from 'commander';
import { z } from 'zod';
import { CUSTOMER_ID_PATTERN } from '../db/customers.js';
import { validateFolderRoot, validatePathTemplate } from '../db/path-template.js';
import { canonicalTimeZone } from '../db/time-zone.js';
import { DEFAULT_PACING_LIMITS } from '../workflows/pacing/controller.js';
import { BUILD_ID_PATTERN } from '../workers/versioning.js';

/**
 * The lowest rate cap an operator may set, uploads/s: the pacing controller never paces slower
 * (one upload every 5 s), so a lower cap would be ignored, and a customer capped near zero would
 * stall without any error to show for it.
 */
export const MIN_RATE_CAP = DEFAULT_PACING_LIMITS.minRatePerSecond;
/** The highest caps that mean anything: the controller never goes above these on its own. */
export const MAX_RATE_CAP = DEFAULT_PACING_LIMITS.maxRatePerSecond;
export const MAX_CONCURRENCY_CAP = DEFAULT_PACING_LIMITS.maxConcurrency;
export const MAX_BATCH_CAP = DEFAULT_PACING_LIMITS.maxBatchSize;

/** Plain decimal notation only: no hex, exponents, signs, spaces, Infinity or NaN. */
const DECIMAL = /^\d+(\.\d+)?$/;
const WHOLE = /^\d+$/;

/** Runs `schema` on `value`; on failure, says what `name` allows. */
function checked<T>(schema: z.ZodType<T>, name: string, allowed: string, value: string): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new InvalidArgumentError(`${name} must be ${allowed}.`);
  return result.data;
}

const rangeSchema = (pattern: RegExp, min: number, max: number) =>
  z.string().regex(pattern).transform(Number).pipe(z.number().min(min).max(max));

/** A cap for set-limits: a number in [min, max] (whole if `whole`), or "off" to remove the cap. */
function cap(name: string, unit: string, min: number, max: number, whole: boolean) {
  const schema = rangeSchema(whole ? WHOLE : DECIMAL, min, max);
  const allowed = `${whole ? 'a whole number' : 'a decimal number'} of ${unit} from ${min} to ${max}, or "off"`;
  // "off" stays a string here: commander turns a parsed null into ''.
  return (value: string): number | 'off' => (value === 'off' ? 'off' : checked(schema, name, allowed, value));
}

export const maxRate = cap('--max-rate', 'uploads per second', MIN_RATE_CAP, MAX_RATE_CAP, false);
export const maxConcurrency = cap('--max-concurrency', 'uploads in flight', 1, MAX_CONCURRENCY_CAP, true);
export const maxBatch = cap('--max-batch', 'items', 1, MAX_BATCH_CAP, true);

/** Text shown to operators (a name, a reason): trimmed, not blank, no control or format characters. */
function text(name: string, maxLength: number) {
  const schema = z
    .string()
    .trim()
    .min(1)
    .max(maxLength)
    .refine((v) => !/[\p{Cc}\p{Cf}]/u.test(v));
  const allowed = `1-${maxLength} characters, not blank, without control characters`;
  return (value: string): string => checked(schema, name, allowed, value);
}

export const customerName = text('--name', 200);
export const reason = text('--reason', 500);

/** A Dropbox token: printable ASCII without spaces, as Dropbox issues them. */
export function token(name: string) {
  const schema = z.string().regex(/^[\x21-\x7e]{1,4096}$/);
  return (value: string): string =>
    checked(schema, name, '1-4096 printable ASCII characters without spaces (the token as Dropbox issued it)', value);
}

export function customerId(value: string): string {
  if (!CUSTOMER_ID_PATTERN.test(value))
    throw new InvalidArgumentError(`customer id ${JSON.stringify(value)} must be 1-64 letters, digits, '-' or '_'`);
  return value;
}

/** Wraps a db/ check that throws Error into one commander reports against `name` (it also shows the value). */
function validatedBy(name: string, validate: (value: string) => void) {
  return (value: string): string => {
    try {
      validate(value);
    } catch (err) {
      throw new InvalidArgumentError(`${name}: ${(err as Error).message}.`);
    }
    return value;
  };
}

export const folderRoot = validatedBy('--folder-root', validateFolderRoot);
export const pathTemplate = validatedBy('--path-template', validatePathTemplate);

/** An IANA time zone name this system knows, as stored: `europe/berlin` gives `Europe/Berlin`. */
export function timeZone(value: string): string {
  try {
    return canonicalTimeZone(value);
  } catch (err) {
    throw new InvalidArgumentError(`--time-zone: ${(err as Error).message}.`);
  }
}

/**
 * An ISO 8601 calendar date (midnight UTC) or a time with Z or an offset. Impossible dates such as
 * 2026-02-30 are refused, not rolled over, and bare numbers are not years.
 */
const SINCE = z.union([
  z.iso.date(),
  z.iso.datetime({ offset: true }),
  z.iso.datetime({ offset: true, precision: -1 }),
]);

const SINCE_ALLOWED =
  'a date like 2026-11-01 (UTC) or a time like 2026-11-01T12:00:00Z or 2026-11-01T12:00+01:00 (ISO 8601, with Z or an offset)';

export function since(value: string): Date {
  return new Date(checked(SINCE, '--since', SINCE_ALLOWED, value));
}

/** Like --since, and not in the future: a cut-off after now would skip the live items too. */
export function backfillSince(value: string): Date {
  const time = new Date(checked(SINCE, '--backfill-since', SINCE_ALLOWED, value));
  if (time.getTime() > Date.now())
    throw new InvalidArgumentError(`--backfill-since must not be in the future (got ${time.toISOString()}).`);
  return time;
}

/** A Worker Deployment build id, as ARCHIVER_BUILD_ID allows. */
export function buildId(value: string): string {
  if (!BUILD_ID_PATTERN.test(value))
    throw new InvalidArgumentError(
      `build id ${JSON.stringify(value)} must be 1-100 letters, digits, '.', '_', '+' or '-', starting with a letter or digit`,
    );
  return value;
}

/** A TCP port to listen on, 1-65535. */
export function listenPort(value: string): number {
  return checked(rangeSchema(WHOLE, 1, 65535), '--redirect-port', 'a port number from 1 to 65535', value);
}

const WAIT_UNITS_MS = { s: 1000, m: 60_000 } as const;

/** How long to wait for a person: whole seconds or minutes, e.g. 90s or 5m, at most an hour. */
export function waitTimeout(value: string): number {
  const m = /^(\d+)(s|m)$/.exec(value);
  const ms = m ? Number(m[1]) * WAIT_UNITS_MS[m[2] as keyof typeof WAIT_UNITS_MS] : NaN;
  if (!(ms >= 1000 && ms <= 3_600_000))
    throw new InvalidArgumentError('--timeout must be a duration from 1s to 60m, like 90s or 5m.');
  return ms;
}
