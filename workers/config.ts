import { accessSync, constants, statSync } from 'node:fs';
import { z } from 'zod';
import type { PostgresTimeouts } from '../db/pool.js';
import {
  loadKeyring,
  SECRET_KEYS_FILE_VARIABLE,
  SECRET_KEYS_VARIABLE,
  SecretKeysInvalid,
  type Keyring,
} from '../secrets/keyring.js';
import { loadTemporalProfile, TemporalProfileError, type TemporalTarget } from '../temporal/connection.js';
import { DEFAULT_PACING_LIMITS } from '../workflows/pacing/controller.js';
import {
  BUILD_ID_PATTERN,
  DEFAULT_DEPLOYMENT_NAME,
  DEPLOYMENT_NAME_PATTERN,
  defaultBuildId,
  type WorkerVersion,
} from './versioning.js';

/**
 * Workflows one worker keeps in memory between their tasks (the SDK's maxCachedWorkflows). Each
 * cached customer workflow costs the worker about 0.25 MB (bench scale, 10,000 idle customers:
 * RSS 2.8 GB with all of them cached, 0.77 GB with 1,000), and the SDK's own default grows with the
 * heap limit (about 2,300 on a 4 GiB heap), so a fixed cap is what keeps RSS bounded however many
 * customers a worker hosts. A workflow needs to stay cached only while its customer is busy, and
 * a worker runs at most ARCHIVER_MAX_CONCURRENT_ACTIVITIES uploads, so 1,000 is far more busy
 * customers than one worker serves at once. An evicted (idle) workflow is replayed from its
 * history on its next task, a wake-up or the safety poll: one history fetch and a replay of a
 * short history (it continues as new when Temporal suggests it). The bench measured the same
 * insert-to-archived time, about 0.3 s, for evicted and cached idle customers.
 */
export const DEFAULT_MAX_CACHED_WORKFLOWS = 1_000;

/** A `host:port` variable; `example` and `alternative` complete its message. */
function hostPort(example: string, alternative = '') {
  const message = `must be host:port with a port from 1 to 65535, e.g. ${example}${alternative}`;
  return z
    .string()
    .regex(/^[^:\s]+:\d+$/, message)
    .refine((address) => isPort(address.slice(address.lastIndexOf(':') + 1)), message);
}

function isReadableFile(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function isPort(text: string): boolean {
  const port = Number(text);
  return /^\d+$/.test(text) && port >= 1 && port <= 65_535;
}

const DURATION_UNITS_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** A duration such as `500ms`, `30s`, `5m`, `6h` or `3d`, in ms; `fallback` when unset. */
function duration(fallback: string) {
  return z
    .string()
    .regex(/^\d+(ms|s|m|h|d)$/, `must be a duration like ${fallback} (units ms, s, m, h, d)`)
    .default(fallback)
    .transform((d) => {
      const unit = /(ms|s|m|h|d)$/.exec(d)?.[1] as keyof typeof DURATION_UNITS_MS;
      return Number.parseInt(d, 10) * DURATION_UNITS_MS[unit];
    });
}

const INITIAL_RATE_MESSAGE = `must be uploads per second from ${DEFAULT_PACING_LIMITS.minRatePerSecond} to ${DEFAULT_PACING_LIMITS.maxRatePerSecond}, e.g. ${DEFAULT_PACING_LIMITS.initialRatePerSecond}`;

/** Environment variables the worker and CLI read, checked once at start-up. */
const EnvSchema = z.object({
  // Unset, these come from the Temporal config profile (temporal/connection.ts), else the defaults.
  TEMPORAL_ADDRESS: hostPort('127.0.0.1:7233').optional(),
  TEMPORAL_NAMESPACE: z.string().min(1).optional(),
  TEMPORAL_API_KEY: z.string().min(1).optional(),
  TEMPORAL_TLS: z.enum(['true', 'false']).default('false'),
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/, error: 'must be a postgres:// URL' }).optional(),
  DROPBOX_APP_KEY: z.string().min(1).optional(),
  DROPBOX_APP_SECRET: z.string().min(1).optional(),
  DROPBOX_API_BASE: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  ARCHIVER_SHUTDOWN_GRACE: duration('30s'),
  ARCHIVER_MAX_CONCURRENT_ACTIVITIES: z.coerce.number().int().positive().default(100),
  ARCHIVER_MAX_CACHED_WORKFLOWS: z.coerce
    .number({ error: 'must be a positive whole number, e.g. 1000' })
    .int('must be a positive whole number, e.g. 1000')
    .positive('must be a positive whole number, e.g. 1000')
    .default(DEFAULT_MAX_CACHED_WORKFLOWS),
  ARCHIVER_LOG_LEVEL: z.enum(['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR']).default('INFO'),
  ARCHIVER_METRICS_ADDRESS: z
    .union([z.literal('off'), hostPort('127.0.0.1:9464', ', or off')])
    .default('127.0.0.1:9464'),
  ARCHIVER_ITEM_MAX_ATTEMPTS: z.coerce
    .number({ error: 'must be a whole number from 1 to 1000' })
    .int('must be a whole number from 1 to 1000')
    .min(1, 'must be a whole number from 1 to 1000')
    .max(1000, 'must be a whole number from 1 to 1000')
    .default(20),
  ARCHIVER_ITEM_MAX_AGE: duration('3d'),
  ARCHIVER_ITEM_RETRY_DELAY: duration('30s'),
  ARCHIVER_SOURCE_TIMEOUT: duration('10s'),
  ARCHIVER_LIVE_WINDOW: duration('24h'),
  ARCHIVER_DROPBOX_TIMEOUT: duration('30s'),
  ARCHIVER_INITIAL_RATE: z.coerce
    .number({ error: INITIAL_RATE_MESSAGE })
    .min(DEFAULT_PACING_LIMITS.minRatePerSecond, INITIAL_RATE_MESSAGE)
    .max(DEFAULT_PACING_LIMITS.maxRatePerSecond, INITIAL_RATE_MESSAGE)
    .default(DEFAULT_PACING_LIMITS.initialRatePerSecond),
  ARCHIVER_WORKFLOW_BUNDLE: z
    .string()
    .refine(isReadableFile, 'must be the path of a workflow bundle file: write one with `npm run bundle`')
    .optional(),
  // Worker Versioning: off unless asked, since a versioned worker gets no work until its version is
  // made current, and an unversioned Archiver must not stall when it is upgraded (workers/versioning.ts).
  ARCHIVER_WORKER_VERSIONING: z.enum(['true', 'false'], { error: 'must be true or false' }).default('false'),
  ARCHIVER_DEPLOYMENT_NAME: z
    .string()
    .regex(DEPLOYMENT_NAME_PATTERN, "must be 1-100 letters, digits, '-' or '_' (no dots), e.g. archiver")
    .default(DEFAULT_DEPLOYMENT_NAME),
  // Empty counts as unset, so a Docker image built without the build argument falls back.
  ARCHIVER_BUILD_ID: z
    .string()
    .transform((id) => (id === '' ? undefined : id))
    .pipe(
      z
        .string()
        .regex(
          BUILD_ID_PATTERN,
          "must be 1-100 letters, digits, '.', '_', '+' or '-', starting with a letter or digit, e.g. 0.1.0-04e37fe",
        )
        .optional(),
    )
    .optional(),
  // How long to wait on Postgres and Temporal, so that nothing waits for ever.
  DATABASE_CONNECT_TIMEOUT: duration('10s'),
  DATABASE_STATEMENT_TIMEOUT: duration('30s'),
  TEMPORAL_CONNECT_TIMEOUT: duration('10s'),
});

export interface ArchiverConfig {
  /** From the environment over the Temporal config profile (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE). */
  temporal: TemporalTarget & { apiKey: string | undefined; connectTimeoutMs: number };
  /** Unset only for commands that need Temporal alone; see requireDatabaseUrl. */
  databaseUrl: string | undefined;
  databaseTimeouts: PostgresTimeouts;
  dropboxApiBase: string | undefined;
  /** Archiver's Dropbox app; needed to refresh customers' access tokens. */
  dropboxApp: { key: string; secret: string } | undefined;
  shutdownGraceMs: number;
  maxConcurrentActivities: number;
  /** Workflows the worker keeps cached between tasks; see DEFAULT_MAX_CACHED_WORKFLOWS. */
  maxCachedWorkflows: number;
  logLevel: 'TRACE' | 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';
  /** host:port of the worker's Prometheus endpoint; undefined when off. */
  metricsAddress: string | undefined;
  /** How an item that keeps failing waits, and when it becomes failed. */
  itemRetry: { initialDelayMs: number; maxAttempts: number; maxAgeMs: number };
  /** Items that occurred within this long are live: leased before a backfill's older ones. */
  liveWindowMs: number;
  /** How long an item's source may take to answer, and to send each chunk of its body. */
  sourceTimeoutMs: number;
  /** How long one Dropbox request may take (plus 2 s per MiB it sends). */
  dropboxTimeoutMs: number;
  /** Uploads/s a customer with no learned limit starts at. */
  initialRatePerSecond: number;
  /** A bundle from `npm run bundle`, so the worker need not bundle its workflow code at start. */
  workflowBundlePath: string | undefined;
  /** The Worker Deployment the workers join and `archiver deploy` manages. */
  deploymentName: string;
  /** The Worker Deployment version this worker declares; undefined when versioning is off. */
  workerVersion: WorkerVersion | undefined;
}

/** Thrown when the environment is unusable; the message names each bad variable and never echoes its value. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Reads the configuration from the environment. The worker reads only its environment; the CLI
 * passes the stack file of `npm start` beneath it (client/stack-file.ts).
 * @throws ConfigError naming every bad variable
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): ArchiverConfig {
  return configFrom(parseEnv(EnvSchema, env), env);
}

/** Variables that only `npm start` reads, checked with the worker's. */
const DEV_STACK_VARIABLES = {
  MEDIA_PORT: z
    .string()
    .refine(isPort, 'must be a port from 1 to 65535, e.g. 8370')
    .default('8370')
    .transform((port) => Number(port)),
};

/**
 * The configuration of `npm start`: the worker's, where set, plus the demo media server's port.
 * @throws ConfigError naming every bad variable
 */
export function loadDevStackConfig(env: NodeJS.ProcessEnv = process.env): ArchiverConfig & { mediaPort: number } {
  const e = parseEnv(EnvSchema.extend(DEV_STACK_VARIABLES), env);
  return { ...configFrom(e, env), mediaPort: e.MEDIA_PORT };
}

function parseEnv<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv): z.output<S> {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`).join('\n');
    throw new ConfigError(`invalid configuration:\n${problems}\nSee .env.example for every variable.`);
  }
  return parsed.data;
}

function invalid(problem: string): ConfigError {
  return new ConfigError(`invalid configuration:\n  ${problem}\nSee .env.example for every variable.`);
}

/**
 * Where Temporal is: each setting from its variable, else from the Temporal config profile, else
 * the default; the profile's values are checked like the variables'.
 */
function temporalTarget(e: z.output<typeof EnvSchema>, env: NodeJS.ProcessEnv): ArchiverConfig['temporal'] {
  let profile;
  try {
    profile = loadTemporalProfile(env);
  } catch (err) {
    if (err instanceof TemporalProfileError) throw invalid(err.message);
    throw err;
  }
  const { settings, source } = profile;
  const address = e.TEMPORAL_ADDRESS ?? settings.address ?? '127.0.0.1:7233';
  if (!hostPort('127.0.0.1:7233').safeParse(address).success)
    throw invalid(`address of ${source ?? 'the Temporal profile'}: must be host:port with a port from 1 to 65535`);
  const namespace = e.TEMPORAL_NAMESPACE ?? settings.namespace ?? 'default';
  if (namespace === '') throw invalid(`namespace of ${source ?? 'the Temporal profile'}: must not be empty`);
  const apiKey = e.TEMPORAL_API_KEY ?? settings.apiKey;
  return {
    address,
    namespace,
    apiKey,
    // No TLS settings anywhere: off, unless an API key turns it on.
    tls: profile.tls ?? apiKey !== undefined,
    metadata: settings.grpcMeta,
    connectTimeoutMs: e.TEMPORAL_CONNECT_TIMEOUT,
  };
}

function configFrom(e: z.output<typeof EnvSchema>, env: NodeJS.ProcessEnv): ArchiverConfig {
  if (Boolean(e.DROPBOX_APP_KEY) !== Boolean(e.DROPBOX_APP_SECRET)) {
    throw invalid('DROPBOX_APP_KEY and DROPBOX_APP_SECRET must be set together');
  }
  return {
    temporal: temporalTarget(e, env),
    databaseUrl: e.DATABASE_URL,
    databaseTimeouts: {
      connectTimeoutMs: e.DATABASE_CONNECT_TIMEOUT,
      statementTimeoutMs: e.DATABASE_STATEMENT_TIMEOUT,
    },
    dropboxApiBase: e.DROPBOX_API_BASE,
    dropboxApp:
      e.DROPBOX_APP_KEY && e.DROPBOX_APP_SECRET ? { key: e.DROPBOX_APP_KEY, secret: e.DROPBOX_APP_SECRET } : undefined,
    shutdownGraceMs: e.ARCHIVER_SHUTDOWN_GRACE,
    maxConcurrentActivities: e.ARCHIVER_MAX_CONCURRENT_ACTIVITIES,
    maxCachedWorkflows: e.ARCHIVER_MAX_CACHED_WORKFLOWS,
    logLevel: e.ARCHIVER_LOG_LEVEL,
    metricsAddress: e.ARCHIVER_METRICS_ADDRESS === 'off' ? undefined : e.ARCHIVER_METRICS_ADDRESS,
    itemRetry: {
      initialDelayMs: e.ARCHIVER_ITEM_RETRY_DELAY,
      maxAttempts: e.ARCHIVER_ITEM_MAX_ATTEMPTS,
      maxAgeMs: e.ARCHIVER_ITEM_MAX_AGE,
    },
    liveWindowMs: e.ARCHIVER_LIVE_WINDOW,
    sourceTimeoutMs: e.ARCHIVER_SOURCE_TIMEOUT,
    dropboxTimeoutMs: e.ARCHIVER_DROPBOX_TIMEOUT,
    initialRatePerSecond: e.ARCHIVER_INITIAL_RATE,
    workflowBundlePath: e.ARCHIVER_WORKFLOW_BUNDLE,
    deploymentName: e.ARCHIVER_DEPLOYMENT_NAME,
    workerVersion:
      e.ARCHIVER_WORKER_VERSIONING === 'true'
        ? { deploymentName: e.ARCHIVER_DEPLOYMENT_NAME, buildId: e.ARCHIVER_BUILD_ID ?? defaultBuildId() }
        : undefined,
  };
}

/** The database URL, for commands that need Postgres. */
export function requireDatabaseUrl(config: ArchiverConfig): string {
  if (!config.databaseUrl) {
    throw new ConfigError(
      'DATABASE_URL is not set: point it at the Archiver database, or run `npm start` first to use the embedded one.',
    );
  }
  return config.databaseUrl;
}

/**
 * The keyring that seals customers' Dropbox tokens in Postgres (and that anything else the worker
 * encrypts derives its key from), from ARCHIVER_SECRET_KEYS or ARCHIVER_SECRET_KEYS_FILE. The
 * worker and every command that reads or writes tokens load it here, once, at start-up.
 * @throws ConfigError naming the variable when neither is set, or the keys are malformed (never echoing a key)
 */
export function loadSecretKeyring(env: NodeJS.ProcessEnv = process.env): Keyring {
  let keyring: Keyring | undefined;
  try {
    keyring = loadKeyring(env);
  } catch (err) {
    if (err instanceof SecretKeysInvalid) throw invalid(err.message);
    throw err;
  }
  if (!keyring)
    throw new ConfigError(
      `${SECRET_KEYS_VARIABLE} is not set: it holds the keys that encrypt Dropbox tokens in Postgres and payloads in Temporal ("<id>:<base64 of 32 bytes>", first is current; generate a key with \`openssl rand -base64 32\`), or set ${SECRET_KEYS_FILE_VARIABLE} to a file holding them. \`npm start\` makes a development key by itself.`,
    );
  return keyring;
}
