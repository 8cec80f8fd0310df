// How the worker and the CLI reach Temporal: where the settings come from (a TOML profile of
// Temporal's client config, with the environment taking precedence), one set of connection options
// for both the worker's NativeConnection and the client's Connection, so TLS and the API key are
// decided once, and one account of what went wrong, naming the server and the variable that
// points at it.

import { accessSync, constants, statSync } from 'node:fs';
import { Client, Connection, type TLSConfig } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import {
  loadClientConfig,
  loadClientConfigProfile,
  toClientOptions,
  type ClientConfigProfile,
} from '@temporalio/envconfig';

/** A Temporal namespace and how to reach it. */
export interface TemporalTarget {
  address: string;
  namespace: string;
  apiKey?: string | undefined;
  /** TLS on (true), off (false), or with certificates from a profile; an API key always turns it on. */
  tls?: boolean | TLSConfig | undefined;
  /** gRPC headers sent with every call (a profile's grpc_meta, TEMPORAL_GRPC_META_*). */
  metadata?: Record<string, string> | undefined;
  /** How long connecting may take before it fails. @default DEFAULT_TEMPORAL_CONNECT_TIMEOUT_MS */
  connectTimeoutMs?: number;
}

export const DEFAULT_TEMPORAL_CONNECT_TIMEOUT_MS = 10_000;

/** Temporal could not be reached or did not answer; it may come back, so a worker waits for it. */
export class TemporalUnreachable extends Error {
  override name = 'TemporalUnreachable';
  readonly part = 'Temporal';
  readonly variable = 'TEMPORAL_ADDRESS';
  constructor(
    readonly address: string,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`Temporal at ${address} (TEMPORAL_ADDRESS) ${reason}`, options);
  }
}

/** Temporal answered but refused the target: an unknown namespace or a refused API key, a configuration error. */
export class TemporalRejected extends Error {
  override name = 'TemporalRejected';
}

/** The options both `Connection.connect` and `NativeConnection.connect` take for a target. */
export function temporalConnectionOptions(target: TemporalTarget): {
  address: string;
  tls?: true | TLSConfig;
  apiKey?: string;
  metadata?: Record<string, string>;
} {
  const tls = target.tls || (target.apiKey ? true : undefined);
  return {
    address: target.address,
    ...(tls ? { tls } : {}),
    ...(target.apiKey ? { apiKey: target.apiKey } : {}),
    ...(target.metadata && Object.keys(target.metadata).length ? { metadata: target.metadata } : {}),
  };
}

/** The profile Temporal's client config gives, and where it came from, for messages. */
export interface TemporalProfile {
  /** Address, namespace, API key, TLS and gRPC headers: the profile's values under the environment's. */
  settings: ClientConfigProfile;
  /** e.g. `profile "prod" of /etc/temporal.toml`; undefined when no file was read. */
  source: string | undefined;
  /** The TLS options the settings ask for (certificate files read); undefined when they say nothing. */
  tls: boolean | TLSConfig | undefined;
}

/** The client config is unusable; the message names the variable or file to fix. */
export class TemporalProfileError extends Error {
  override name = 'TemporalProfileError';
}

function readable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * Loads the Temporal connection settings the way Temporal's CLI and SDKs do: the profile named by
 * TEMPORAL_PROFILE (else `default`) of the TOML file TEMPORAL_CONFIG_FILE (else
 * `~/.config/temporalio/temporal.toml`, if there), with TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
 * TEMPORAL_API_KEY and the TEMPORAL_TLS* variables taking precedence. Unknown keys in the file
 * are errors, so a typo is not silently a default.
 * @throws TemporalProfileError for a missing file or profile, bad TOML, or an unreadable certificate
 */
export function loadTemporalProfile(env: Record<string, string | undefined>): TemporalProfile {
  const vars = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
  const file = vars.TEMPORAL_CONFIG_FILE;
  // The SDK treats a missing file as no file; a file someone named must be there.
  if (file !== undefined && !readable(file))
    throw new TemporalProfileError(`TEMPORAL_CONFIG_FILE: no readable file at ${file}`);
  const where = file ?? 'the Temporal config file (~/.config/temporalio/temporal.toml)';
  const name = vars.TEMPORAL_PROFILE;
  let settings: ClientConfigProfile;
  try {
    settings = loadClientConfigProfile({ overrideEnvVars: vars, configFileStrict: true });
  } catch (err) {
    const message = (err as Error).message.split('\n')[0] ?? '';
    if (/^Profile '.*' not found/.test(message)) {
      const known = Object.keys(loadClientConfig({ overrideEnvVars: vars }).profiles);
      throw new TemporalProfileError(
        `TEMPORAL_PROFILE: no profile "${name}" in ${where} (it has ${known.length ? known.map((k) => `"${k}"`).join(', ') : 'none'})`,
        { cause: err },
      );
    }
    throw new TemporalProfileError(`${file ? 'TEMPORAL_CONFIG_FILE' : 'Temporal config'}: ${where}: ${message}`, {
      cause: err,
    });
  }
  const fromFile = Object.keys(loadClientConfig({ overrideEnvVars: vars }).profiles).includes(name ?? 'default');
  let tls: boolean | TLSConfig | undefined;
  try {
    tls = toClientOptions({ ...settings, apiKey: undefined }).connectionOptions.tls ?? undefined;
    // TLS asked for with nothing to configure (TEMPORAL_TLS=true) is plain TLS.
    if (typeof tls === 'object' && Object.values(tls).every((v) => v === undefined)) tls = true;
  } catch (err) {
    throw new TemporalProfileError(`TLS certificate of ${where}: ${(err as Error).message}`, { cause: err });
  }
  return { settings, source: fromFile ? `profile "${name ?? 'default'}" of ${where}` : undefined, tls };
}

/** gRPC status codes that mean "the server is not there (yet)" and those that mean "not like this". */
const GRPC_UNAVAILABLE = new Set([4, 14]);
const GRPC_NOT_FOUND = 5;
const GRPC_REFUSED = new Set([7, 16]);

/**
 * Classifies an error from connecting to `target` or from its first call: TemporalUnreachable,
 * TemporalRejected, or `undefined` when it is about neither.
 */
export function temporalFailure(
  err: unknown,
  target: TemporalTarget,
): TemporalUnreachable | TemporalRejected | undefined {
  if (err instanceof TemporalUnreachable || err instanceof TemporalRejected) return err;
  if (!(err instanceof Error)) return undefined;
  const options = { cause: err };
  const timeoutS = (target.connectTimeoutMs ?? DEFAULT_TEMPORAL_CONNECT_TIMEOUT_MS) / 1000;
  const code = (err as { code?: unknown }).code;
  const message = err.message;
  if (code === GRPC_NOT_FOUND || /namespace \S+ (is|was) not found/i.test(message)) {
    return new TemporalRejected(
      `Temporal at ${target.address} has no namespace "${target.namespace}" (TEMPORAL_NAMESPACE): create it, or set TEMPORAL_NAMESPACE to one that exists`,
      options,
    );
  }
  if ((typeof code === 'number' && GRPC_REFUSED.has(code)) || /unauthenticated|permission denied/i.test(message)) {
    return new TemporalRejected(
      `Temporal at ${target.address} (TEMPORAL_ADDRESS) refused the credentials for namespace "${target.namespace}" (TEMPORAL_API_KEY, TEMPORAL_TLS)`,
      options,
    );
  }
  if (/before the deadline|timeout expired|timed out|deadline exceeded/i.test(message)) {
    return new TemporalUnreachable(
      target.address,
      `did not answer within ${timeoutS}s (TEMPORAL_CONNECT_TIMEOUT)`,
      options,
    );
  }
  if (/connection refused|ECONNREFUSED/i.test(message)) {
    return new TemporalUnreachable(target.address, 'refused the connection', options);
  }
  if (/dns error|ENOTFOUND|EAI_AGAIN|name or service not known/i.test(message)) {
    return new TemporalUnreachable(target.address, 'has a host name that does not resolve', options);
  }
  if (/invalid port|invalid uri|invalid url/i.test(message)) {
    return new TemporalRejected(`TEMPORAL_ADDRESS ${target.address} is not a usable host:port`, options);
  }
  if ((typeof code === 'number' && GRPC_UNAVAILABLE.has(code)) || err.name === 'TransportError') {
    return new TemporalUnreachable(target.address, `is unavailable: ${message.split('\n')[0]}`, options);
  }
  return undefined;
}

/** Fails after the target's connect timeout unless `work` settles first; a late result is handed to `late` to clean up. */
export function withConnectTimeout<T>(work: Promise<T>, target: TemporalTarget, late: (value: T) => void): Promise<T> {
  const ms = target.connectTimeoutMs ?? DEFAULT_TEMPORAL_CONNECT_TIMEOUT_MS;
  return new Promise<T>((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      reject(new TemporalUnreachable(target.address, `did not answer within ${ms / 1000}s (TEMPORAL_CONNECT_TIMEOUT)`));
    }, ms);
    work.then(
      (value) => {
        clearTimeout(timer);
        if (timedOut) late(value);
        else resolve(value);
      },
      (err: Error) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/** The part of the workflow service both connections expose, enough to look a namespace up. */
interface NamespaceLookup {
  describeNamespace(request: { namespace: string }): Promise<unknown>;
}

/**
 * Looks the target's namespace up, so that a wrong TEMPORAL_NAMESPACE fails at start-up, naming
 * the variable, rather than at the first call.
 * @throws TemporalRejected for an unknown namespace or refused credentials, TemporalUnreachable if the server stops answering
 */
export async function checkNamespace(service: NamespaceLookup, target: TemporalTarget): Promise<void> {
  try {
    await withConnectTimeout(service.describeNamespace({ namespace: target.namespace }), target, () => undefined);
  } catch (err) {
    throw temporalFailure(err, target) ?? err;
  }
}

/**
 * A client of the target's namespace, once the server has answered and the namespace exists,
 * reading and writing payloads with `dataConverter` (archiverDataConverter: sealed payloads);
 * close it with `client.connection.close()`.
 * @throws TemporalUnreachable or TemporalRejected
 */
export async function connectClient(target: TemporalTarget, dataConverter: DataConverter): Promise<Client> {
  let connection: Connection;
  try {
    connection = await Connection.connect({
      ...temporalConnectionOptions(target),
      connectTimeout: target.connectTimeoutMs ?? DEFAULT_TEMPORAL_CONNECT_TIMEOUT_MS,
    });
  } catch (err) {
    throw temporalFailure(err, target) ?? err;
  }
  try {
    await checkNamespace(connection.workflowService, target);
  } catch (err) {
    await connection.close();
    throw err;
  }
  return new Client({ connection, namespace: target.namespace, dataConverter });
}
