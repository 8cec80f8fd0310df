// Parsers for the CLI's option values: each turns the operator's text into a checked value, or
// throws InvalidArgumentError, which commander reports naming the option.

import { InvalidArgumentError } from 'commander';

/** A value that must not be empty or blank. */
export function nonEmpty(name: string) {
  return (value: string): string => {
    if (value.trim() === '') throw new InvalidArgumentError(`${name} must not be empty`);
    return value;
  };
}

/** A positive number, or "off" to remove a cap. */
export function positiveOrOff(name: string) {
  // "off" stays a string here: commander turns a parsed null into ''.
  return (value: string): number | 'off' => {
    if (value === 'off') return 'off';
    const n = Number(value);
    if (!(n > 0)) throw new InvalidArgumentError(`${name} must be a positive number or "off", got "${value}"`);
    return n;
  };
}

/** A time as `new Date` reads it. */
export function since(value: string): Date {
  const date = new Date(value);
  if (Number.isNaN(date.getTime()))
    throw new InvalidArgumentError(`--since must be a date like 2026-11-01 or 2026-11-01T12:00:00Z, got "${value}"`);
  return date;
}
