import { condition, log } from '@temporalio/workflow';

/**
 * Runs the live lane: while the customer's workflow uploads a batch (a backfill's lasts about
 * 10 s), live items that arrive would wait for its end. Instead each itemsAvailable signal kicks
 * the lane, which leases the live items only and uploads them at once beside the batch, taking
 * their start times first (WorkflowPacer.liveLane), so the backfill gets the pace they leave.
 * One run at a time: signals that arrive meanwhile make one more run after it.
 */
export class LiveLane {
  private running = false;
  private again = false;

  /** `runOnce` leases and uploads the live items pending now; it returns when they are done. */
  constructor(private readonly runOnce: () => Promise<void>) {}

  /** New items were signalled: run now, or once the run in flight ends. */
  kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    void this.loop();
  }

  /** Resolves once no run is in flight; the workflow waits for it before it continues as new or stops. */
  settled(): Promise<void> {
    return condition(() => !this.running);
  }

  private async loop(): Promise<void> {
    try {
      do {
        this.again = false;
        await this.runOnce();
      } while (this.again);
    } catch (err) {
      // The next batch leases whatever this run left; nothing is lost by going on.
      log.warn('live lane run failed', { error: (err as Error).message });
    } finally {
      this.running = false;
    }
  }
}
