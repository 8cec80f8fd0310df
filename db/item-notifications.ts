// The LISTEN side of the archive_items insert trigger (db/migrations), on a connection of its own.

import pg from 'pg';
import { postgresFailure } from './connection-failures.js';
import {
  connectionConfig,
  dbFromConnection,
  DEFAULT_POSTGRES_TIMEOUTS,
  type Db,
  type PostgresTimeouts,
} from './pool.js';

/** The channel the archive_items insert trigger notifies, with the customer id as payload. */
export const ITEMS_CHANNEL = 'archive_items';

/** A connection listening on ITEMS_CHANNEL. */
export interface ItemsListener {
  /** Queries on the listening connection itself. */
  db: Db;
  close(): Promise<void>;
}

export interface ItemsListenerHandlers {
  /** A customer got new items. */
  onItems(customerId: string): void;
  /** The connection failed or ended; it will not listen again. Also called for a listener still connecting. */
  onLost(listener: ItemsListener, err: Error | undefined): void;
}

/**
 * Connects to `databaseUrl` and listens for new items. Notifications sent while nobody listened
 * are lost, so a caller should look for pending items after each (re)connect.
 * @throws PostgresUnreachable or PostgresRejected if it cannot connect, or the error of LISTEN
 */
export async function listenForItems(
  databaseUrl: string,
  handlers: ItemsListenerHandlers,
  timeouts: PostgresTimeouts = DEFAULT_POSTGRES_TIMEOUTS,
): Promise<ItemsListener> {
  const connection = new pg.Client(connectionConfig(databaseUrl, timeouts));
  const listener: ItemsListener = { db: dbFromConnection(connection), close: () => connection.end() };
  connection.on('notification', (message) => {
    if (message.channel === ITEMS_CHANNEL && message.payload) handlers.onItems(message.payload);
  });
  connection.on('error', (err) => handlers.onLost(listener, err));
  connection.on('end', () => handlers.onLost(listener, undefined));
  try {
    await connection.connect();
    await connection.query(`LISTEN ${ITEMS_CHANNEL}`);
  } catch (err) {
    await connection.end().catch(() => undefined);
    throw postgresFailure(err, databaseUrl, timeouts) ?? err;
  }
  return listener;
}
