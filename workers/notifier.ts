import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { customersWithPendingItems } from '../db/item-counts.js';
import { listenForItems, type ItemsListener } from '../db/item-notifications.js';
import type { PostgresTimeouts } from '../db/pool.js';
import { itemsAvailableSignal } from '../workflows/messages.js';
import { workflowIdFor } from '../workflows/names.js';

export interface NotifierOptions {
  databaseUrl: string;
  /** @default DEFAULT_POSTGRES_TIMEOUTS */
  databaseTimeouts?: PostgresTimeouts;
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
  private listener: ItemsListener | undefined;
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
    await this.listener?.close().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    this.listener = await listenForItems(
      this.options.databaseUrl,
      {
        onItems: (customerId) => this.wake([customerId]),
        onLost: (listener, err) => this.lost(listener, err),
      },
      this.options.databaseTimeouts,
    );
    this.reconnectDelayMs = 250;
  }

  private lost(listener: ItemsListener, err: Error | undefined): void {
    if (this.stopped || this.listener !== listener) return;
    this.listener = undefined;
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
    this.wake(this.listener ? await customersWithPendingItems(this.listener.db) : []);
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
    await Promise.all(
      customers.map(async (customerId) => {
        try {
          await this.options.client.workflow.getHandle(workflowIdFor(customerId)).signal(itemsAvailableSignal);
        } catch (err) {
          // A customer that is not running has nobody to wake; `archiver start` picks it up.
          if (!(err instanceof WorkflowNotFoundError))
            this.log('could not signal customer', { customerId, error: (err as Error).message });
        }
      }),
    );
  }
}
