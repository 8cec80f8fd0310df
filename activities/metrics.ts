// Archiver's own metrics, emitted through the Temporal SDK's meter so they reach the worker's
// Prometheus endpoint beside the SDK's. Call only inside an activity.

import { metricMeter } from '@temporalio/activity';

/** An item archived into Dropbox, and its bytes. */
export function countArchived(customerId: string, bytes: number): void {
  const tags = { customer_id: customerId };
  metricMeter.createCounter('archiver_items_archived', 'items', 'Items archived into Dropbox').add(1, tags);
  metricMeter.createCounter('archiver_bytes_archived', 'bytes', 'Bytes archived into Dropbox').add(bytes, tags);
}

/** A 429 or too_many_write_operations answer, by reason. */
export function countThrottled(customerId: string, reason: 'too_many_requests' | 'too_many_write_operations'): void {
  metricMeter
    .createCounter('archiver_dropbox_throttled', 'responses', 'Dropbox answers that throttled an upload, by reason')
    .add(1, { customer_id: customerId, reason });
}

/**
 * What the customer's last verification found: its missing plus changed files, and when it
 * finished, so alert rules can read only the newest run's value when several workers report one.
 */
export function reportDrift(customerId: string, drift: number, finishedAt: Date): void {
  const tags = { customer_id: customerId };
  metricMeter
    .createGauge('archiver_archive_drift', 'int', 'files', 'Missing plus changed files at the last verification')
    .set(drift, tags);
  metricMeter
    .createGauge(
      'archiver_verified_timestamp_seconds',
      'float',
      's',
      'When the last verification of the customer finished, in Unix seconds',
    )
    .set(finishedAt.getTime() / 1000, tags);
}
