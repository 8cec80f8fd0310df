// How the worker and the CLI reach Temporal: one set of connection options for both the worker's
// NativeConnection and the client's Connection, so TLS and the API key are decided once, and one
// account of what went wrong, naming the server and the variable that points at it.

import { Client, Connection } from '@temporalio/client';

/** A Temporal namespace and how to reach it. */
export interface TemporalTarget {
  address: string;
  namespace: string;
  apiKey?: string | undefined;
  /** TLS without an API key; an API key always turns TLS on. */
  tls?: boolean;
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
export function temporalConnectionOptions(target: TemporalTarget): { address: string; tls?: true; apiKey?: string } {
  return {
    address: target.address,
    ...(target.tls || target.apiKey ? { tls: true as const } : {}),
    ...(target.apiKey ? { apiKey: target.apiKey } : {}),
  };
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
 * A client of the target's namespace, once the server has answered and the namespace exists;
 * close it with `client.connection.close()`.
 * @throws TemporalUnreachable or TemporalRejected
 */
export async function connectClient(target: TemporalTarget): Promise<Client> {
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
  return new Client({ connection, namespace: target.namespace });
}
