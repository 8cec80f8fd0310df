import type { Writable } from 'node:stream';
import { DefaultLogger, Runtime, type LogEntry, type LogLevel } from '@temporalio/worker';

export const LOG_LEVELS: readonly LogLevel[] = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'];

/** Metadata too bulky or opaque for an operator's log line. */
const DROPPED_META = new Set(['taskToken']);

function toJsonLine(entry: LogEntry): string {
  const meta: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(entry.meta ?? {})) {
    if (DROPPED_META.has(key)) continue;
    meta[key] = value instanceof Error ? { name: value.name, message: value.message, type: (value as { type?: string }).type } : value;
  }
  const time = new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString();
  return JSON.stringify({ time, level: entry.level.toLowerCase(), message: entry.message, ...meta }, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) + '\n';
}

/**
 * Routes the Temporal runtime's logs (workflow, activity and worker logs, with customerId and
 * itemId where the code passes them) to `stream` as one JSON object per line. Call once per
 * process, before any connection or worker is created.
 */
export function installJsonLogging(level: LogLevel = 'INFO', stream: Writable = process.stdout): void {
  Runtime.install({ logger: new DefaultLogger(level, (entry) => { stream.write(toJsonLine(entry)); }) });
}
