// The LISTEN side of the archive_items insert trigger (db/migrations), on a connection of its own.

import pg from 'pg';
import { dbFromConnection, type Db } from './pool.js';

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
 * @throws the connection error if it cannot connect or LISTEN
 */
export async function listenForItems(databaseUrl: string, handlers: ItemsListenerHandlers): Promise<ItemsListener> {
  const connection = new pg.Client({ connectionString: databaseUrl });
  const listener: ItemsListener = { db: dbFromConnection(connection), close: () => connection.end() };
  connection.on('notification', (message) => {
    if (message.channel === ITEMS_CHANNEL && message.payload) handlers.onItems(message.payload);
  });
  connection.on('error', (err) => handlers.onLost(listener, err));
  connection.on('end', () => handlers.onLost(listener, undefined));
  await connection.connect();
  await connection.query(`LISTEN ${ITEMS_CHANNEL}`);
  return listener;
}
