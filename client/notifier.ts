import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import pg from 'pg';
import { itemsAvailableSignal } from '../workflows/messages.js';
import { workflowIdFor } from '../workflows/names.js';

/** The channel the archive_items insert trigger notifies, with the customer id as payload. */
export const ITEMS_CHANNEL = 'archive_items';

export interface NotifierOptions {
  databaseUrl: string;
  client: Client;
  /** Notifications for one customer within this window become one signal. @default 200 ms */
  debounceMs?: number;
  log?: (event: string, fields?: Record<string, unknown>) => void;
}

const MAX_RECONNECT_DELAY_MS = 10_000;

/**
 * Turns Postgres NOTIFYs from the items trigger into `itemsAvailable` signals, so an idle
 * customer wakes within a second of an insert instead of at its next safety poll. Bursts are
 * debounced per customer. When the database connection drops (a Postgres restart), it reconnects
 * with backoff. On every (re)connect it signals every customer with pending items, since
 * notifications sent while nobody listened are lost.
 */
export class ItemsNotifier {
  private connection: pg.Client | undefined;
  private readonly pending = new Set<string>();
  private flushTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectDelayMs = 250;
  private stopped = false;
  private readonly debounceMs: number;
  private readonly log: NonNullable<NotifierOptions['log']>;

  constructor(private readonly options: NotifierOptions) {
    this.debounceMs = options.debounceMs ?? 200;
    this.log = options.log ?? (() => undefined);
  }

  /**
   * Connects and listens, then wakes customers with pending items (inserted while no notifier was
   * listening). Throws if the first connection fails.
   */
  async start(): Promise<void> {
    await this.connect();
    await this.catchUp();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.flushTimer);
    clearTimeout(this.reconnectTimer);
    await this.connection?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const connection = new pg.Client({ connectionString: this.options.databaseUrl });
    connection.on('notification', (message) => {
      if (message.channel === ITEMS_CHANNEL && message.payload) this.wake([message.payload]);
    });
    connection.on('error', (err) => this.lost(connection, err));
    connection.on('end', () => this.lost(connection, undefined));
    await connection.connect();
    await connection.query(`LISTEN ${ITEMS_CHANNEL}`);
    this.connection = connection;
    this.reconnectDelayMs = 250;
  }

  private lost(connection: pg.Client, err: Error | undefined): void {
    if (this.stopped || this.connection !== connection) return;
    this.connection = undefined;
    this.log('notifier lost its database connection; reconnecting', { error: err?.message });
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    this.reconnectTimer = setTimeout(() => {
      this.connect()
        .then(() => this.catchUp())
        .then(() => this.log('notifier reconnected'))
        .catch(() => {
          this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, MAX_RECONNECT_DELAY_MS);
          this.scheduleReconnect();
        });
    }, this.reconnectDelayMs);
  }

  /** Wakes every customer with pending items: the notifications sent while disconnected are gone. */
  private async catchUp(): Promise<void> {
    const rows = await this.connection?.query<{ customer_id: string }>(`SELECT DISTINCT customer_id FROM archive_items WHERE state = 'pending'`);
    this.wake((rows?.rows ?? []).map((r) => r.customer_id));
  }

  private wake(customerIds: string[]): void {
    for (const id of customerIds) this.pending.add(id);
    this.flushTimer ??= setTimeout(() => {
      this.flushTimer = undefined;
      void this.flush();
    }, this.debounceMs);
  }

  private async flush(): Promise<void> {
    const customers = [...this.pending];
    this.pending.clear();
    await Promise.all(customers.map(async (customerId) => {
      try {
        await this.options.client.workflow.getHandle(workflowIdFor(customerId)).signal(itemsAvailableSignal);
      } catch (err) {
        // A customer that is not running has nobody to wake; `archiver start` picks it up.
        if (!(err instanceof WorkflowNotFoundError)) this.log('could not signal customer', { customerId, error: (err as Error).message });
      }
    }));
  }
}
