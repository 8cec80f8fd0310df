import { metricMeter, setCurrentDetails, upsertSearchAttributes } from '@temporalio/workflow';
import type { CustomerState } from './customer-state.js';
import { ARCHIVER_STATES, searchAttributes, type ArchiverState } from './names.js';
import type { PacingPlan } from './pacing/controller.js';

/**
 * What operators see of a customer without querying it: the workflow's current details in the
 * Web UI, the search attributes it filters on, and the gauges on the worker's Prometheus endpoint.
 */
export class WebUiView {
  private shownState: ArchiverState | undefined;
  private shownBacklog: number | undefined;

  constructor(private readonly customer: CustomerState) {}

  /** Running: `done` of the batch's `size` items are through, at the pace of `plan`. */
  showUploading(done: number, size: number, plan: PacingPlan): void {
    const pace = `${plan.ratePerSecond.toFixed(1)}/s, up to ${plan.concurrency} at once`;
    this.show(
      'running',
      done === 0 ? `uploading a batch of ${size}, ${pace}` : `uploading ${done} of ${size} in this batch, ${pace}`,
    );
  }

  /** Records `state` and says what is happening; search attributes change only when they differ, so no event is spent otherwise. */
  show(state: ArchiverState, details: string): void {
    const { customer } = this;
    customer.state = state;
    const live = customer.liveTotals(Date.now());
    setCurrentDetails(
      `**${state}**: ${details}. Archived ${live.archived}, failed ${live.failed}, 429s ${live.rateLimited}.`,
    );
    // The SDK emits workflow metrics only outside replay.
    const tags = { customer_id: customer.customerId };
    metricMeter
      .createGauge('archiver_backlog', 'int', 'items', 'Pending items of the customer')
      .set(customer.backlog, tags);
    metricMeter
      .createGauge('archiver_rate', 'float', 'items/s', 'Items archived per second in the last batch')
      .set(customer.ratePerSecond, tags);
    // One series per state, 1 for the current one, so an alert can select the states that need an operator.
    const states = metricMeter.createGauge(
      'archiver_state',
      'int',
      '',
      'Whether the customer is in this state (1) or not (0)',
    );
    for (const s of ARCHIVER_STATES) states.set(s === state ? 1 : 0, { ...tags, state: s });
    // A timestamp, not an age: Prometheus computes the lag (time() minus it), which keeps growing
    // while the workflow sleeps and sets nothing. 0 when nothing waits.
    metricMeter
      .createGauge(
        'archiver_oldest_waiting_timestamp_seconds',
        'float',
        's',
        'When the oldest item not yet archived or failed was inserted (Unix seconds); 0 if none',
      )
      .set((customer.oldestWaitingSince ?? 0) / 1000, tags);
    // When this worker last reported the customer: a customer's workflow moves between workers,
    // and the one it left keeps exporting its last values; the alert rules use the latest reporter.
    metricMeter
      .createGauge(
        'archiver_state_reported_timestamp_seconds',
        'float',
        's',
        'When this worker last reported the gauges of the customer (Unix seconds)',
      )
      .set(Date.now() / 1000, tags);
    if (this.shownState === state && this.shownBacklog === customer.backlog) return;
    upsertSearchAttributes([
      { key: searchAttributes.customerId, value: customer.customerId },
      { key: searchAttributes.state, value: state },
      { key: searchAttributes.backlog, value: customer.backlog },
    ]);
    this.shownState = state;
    this.shownBacklog = customer.backlog;
  }
}
