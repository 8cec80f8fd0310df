// How the worker and the CLI reach Temporal: one set of connection options for both the worker's
// NativeConnection and the client's Connection, so TLS and the API key are decided once.

import { Client, Connection } from '@temporalio/client';

/** A Temporal namespace and how to reach it. */
export interface TemporalTarget {
  address: string;
  namespace: string;
  apiKey?: string | undefined;
  /** TLS without an API key; an API key always turns TLS on. */
  tls?: boolean;
}

/** The options both `Connection.connect` and `NativeConnection.connect` take for a target. */
export function temporalConnectionOptions(target: TemporalTarget): { address: string; tls?: true; apiKey?: string } {
  return {
    address: target.address,
    ...(target.tls || target.apiKey ? { tls: true as const } : {}),
    ...(target.apiKey ? { apiKey: target.apiKey } : {}),
  };
}

/** A client of the target's namespace; close it with `client.connection.close()`. */
export async function connectClient(target: TemporalTarget): Promise<Client> {
  const connection = await Connection.connect(temporalConnectionOptions(target));
  return new Client({ connection, namespace: target.namespace });
}
