import type { Writable } from 'node:stream';
import { DefaultLogger, Runtime, type LogEntry, type LogLevel } from '@temporalio/worker';

/** Metadata too bulky or opaque for an operator's log line. */
const DROPPED_META = new Set(['taskToken']);

function toJsonLine(entry: LogEntry): string {
  const meta: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(entry.meta ?? {})) {
    if (DROPPED_META.has(key)) continue;
    meta[key] =
      value instanceof Error
        ? { name: value.name, message: value.message, type: (value as { type?: string }).type }
        : value;
  }
  const time = new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString();
  return (
    JSON.stringify({ time, level: entry.level.toLowerCase(), message: entry.message, ...meta }, (_k, v: unknown) =>
      typeof v === 'bigint' ? v.toString() : v,
    ) + '\n'
  );
}

export interface RuntimeOptions {
  logLevel?: LogLevel;
  /** Where the JSON log lines go. @default stdout */
  logStream?: Writable;
  /** host:port for a Prometheus `/metrics` endpoint with the SDK's metrics and Archiver's own; unset for none. */
  metricsAddress?: string | undefined;
}

/**
 * Sets up Temporal's runtime for this process: workflow, activity and worker logs as one JSON
 * object per line (with customerId and itemId where the code passes them), and optionally a
 * Prometheus endpoint. Call once per process, before any connection or worker is created.
 */
export function installRuntime({
  logLevel = 'INFO',
  logStream = process.stdout,
  metricsAddress,
}: RuntimeOptions = {}): void {
  Runtime.install({
    logger: new DefaultLogger(logLevel, (entry) => {
      logStream.write(toJsonLine(entry));
    }),
    ...(metricsAddress ? { telemetryOptions: { metrics: { prometheus: { bindAddress: metricsAddress } } } } : {}),
  });
}
