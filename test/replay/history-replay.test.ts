import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { DeterminismViolationError } from '@temporalio/workflow';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import {
  HOLD_CONFIRMED_LIMIT,
  LIVE_LANE,
  PACE_PAST_BAD_SOURCES,
  QUIET_PROBES,
  RETRY_RETURNED_LIVE_ITEMS,
  SHORT_HISTORIES,
  UPLOAD_SLICES,
  VERIFY_CREDENTIALS_ON_RESUME,
  WARM_START,
} from '../../workflows/archive-customer.js';
import { HISTORIES_DIR, retriedSlices } from '../support/harness.js';
import { testDataConverter, workflowBundle } from '../support/stack.js';
import { ENCRYPTED_ENCODING } from '../../temporal/payload-codec.js';

/**
 * Histories recorded from real runs (`npm run record-histories`), replayed against today's workflow
 * code: a change that would break a running workflow fails here.
 */
const files = readdirSync(HISTORIES_DIR, { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.json'))
  .sort();

function load(file: string) {
  return historyFromJSON(JSON.parse(readFileSync(join(HISTORIES_DIR.pathname, file), 'utf8')));
}

describe('replay of recorded histories', () => {
  it('has recorded histories to replay', () => {
    expect(files.length).toBeGreaterThanOrEqual(3);
  });

  it.each(files)('%s replays deterministically on the current workflow code', async (file) => {
    const history = load(file);
    expect(history.events?.length).toBeGreaterThan(10);
    await Worker.runReplayHistory(
      { workflowBundle: await workflowBundle(), dataConverter: testDataConverter(), replayName: file },
      history,
    );
  });

  // Patch markers carry the patch id in their payload, as JSON.
  const markers = (file: string) =>
    (load(file).events ?? [])
      .filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch')
      .flatMap((e) => Object.values(e.markerRecordedEventAttributes?.details ?? {}).flatMap((p) => p.payloads ?? []))
      .map((payload) => Buffer.from(payload.data ?? []).toString('utf8'))
      .join();

  it(`records the ${VERIFY_CREDENTIALS_ON_RESUME} patch where a needs-reauth customer resumes`, () => {
    expect(markers('resume-checks-credentials.json')).toContain(`"id":"${VERIFY_CREDENTIALS_ON_RESUME}"`);
  });

  it(`records the ${PACE_PAST_BAD_SOURCES} and ${SHORT_HISTORIES} patches where bad sources straggle`, () => {
    expect(markers('stuck-sources.json')).toContain(`"id":"${PACE_PAST_BAD_SOURCES}"`);
    expect(markers('stuck-sources.json')).toContain(`"id":"${SHORT_HISTORIES}"`);
    // Recorded before them: replayed above on the code paths it took.
    expect(markers('before-codec/stuck-sources-before-bad-source-pacing.json')).not.toContain(PACE_PAST_BAD_SOURCES);
  });

  it(`records the ${WARM_START} patch where a customer's new run starts at its learned limit`, () => {
    expect(markers('warm-start.json')).toContain(`"id":"${WARM_START}"`);
  });

  const activityNames = (file: string) =>
    new Set((load(file).events ?? []).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []));

  it(`records the ${UPLOAD_SLICES} patch, and keeps histories of uploads one item per activity from before it`, () => {
    expect(markers('drain.json')).toContain(`"id":"${UPLOAD_SLICES}"`);
    expect(activityNames('drain.json')).toContain('uploadItems');
    expect(activityNames('session-commit.json')).toContain('stageItems');
    expect(activityNames('before-slices/drain.json')).toContain('uploadItem');
    expect(activityNames('before-slices/drain.json')).not.toContain('uploadItems');
    expect(activityNames('before-slices/session-commit.json')).toContain('stageItem');
  });

  /** fetchBatch activities scheduled while an uploadItems activity was open: the live lane's leases. */
  const leasesBesideUploads = (file: string) => {
    const open = new Set<string>();
    let beside = 0;
    for (const e of load(file).events ?? []) {
      const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
      if (name === 'uploadItems') open.add(String(e.eventId));
      if (name === 'fetchBatch' && open.size > 0) beside += 1;
      const ended =
        e.activityTaskCompletedEventAttributes ??
        e.activityTaskFailedEventAttributes ??
        e.activityTaskTimedOutEventAttributes ??
        e.activityTaskCanceledEventAttributes;
      if (ended) open.delete(String(ended.scheduledEventId));
    }
    return beside;
  };

  it(`records the ${LIVE_LANE} patch, with live items leased while a batch's slices upload`, () => {
    expect(markers('live-lane.json')).toContain(`"id":"${LIVE_LANE}"`);
    expect(leasesBesideUploads('live-lane.json')).toBeGreaterThanOrEqual(1);
    expect(leasesBesideUploads('drain.json')).toBe(0);
  });

  it(`records the ${QUIET_PROBES} patch where a customer drains under a rate limit, and keeps histories from before it`, () => {
    expect(markers('drain-under-429.json')).toContain(`"id":"${QUIET_PROBES}"`);
    expect(markers('before-quiet-probes/drain-under-429.json')).not.toContain(QUIET_PROBES);
  });

  it(`records the ${HOLD_CONFIRMED_LIMIT} and ${RETRY_RETURNED_LIVE_ITEMS} patches, and keeps histories from before them`, () => {
    expect(markers('drain-under-429.json')).toContain(`"id":"${HOLD_CONFIRMED_LIMIT}"`);
    expect(markers('live-lane.json')).toContain(`"id":"${RETRY_RETURNED_LIVE_ITEMS}"`);
    expect(markers('before-confirmed-hold/drain-under-429.json')).toContain(`"id":"${QUIET_PROBES}"`);
    expect(markers('before-confirmed-hold/drain-under-429.json')).not.toContain(HOLD_CONFIRMED_LIMIT);
    expect(markers('before-confirmed-hold/live-lane.json')).not.toContain(RETRY_RETURNED_LIVE_ITEMS);
  });

  it('has a slice that Temporal retried after a 429, and one retried after its worker died', () => {
    expect(retriedSlices(load('drain-under-429.json')).map((s) => s.lastFailure)).toContain('RateLimited');
    expect(retriedSlices(load('worker-crash-mid-slice.json')).map((s) => s.lastFailure)).toContain('timeout:HEARTBEAT');
  });

  it('has histories recorded with the payload codec on, which replay only through it', async () => {
    const sealed = files.filter((f) => !f.includes('/'));
    expect(sealed.length).toBeGreaterThanOrEqual(10);
    for (const file of sealed) {
      const input = load(file).events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
      expect(Buffer.from(input?.metadata?.encoding ?? []).toString(), file).toBe(ENCRYPTED_ENCODING);
    }
    await expect(
      Worker.runReplayHistory({ workflowBundle: await workflowBundle(), replayName: 'no codec' }, load('drain.json')),
    ).rejects.toThrow();
  });

  it('detects history the current code would not produce (the check can fail)', async () => {
    const history = load(files[0] as string);
    // Pretend the recorded run scheduled a different first activity than today's code does.
    const scheduled = history.events?.find(
      (e) => e.activityTaskScheduledEventAttributes,
    )?.activityTaskScheduledEventAttributes;
    if (!scheduled?.activityType) throw new Error('recorded history schedules no activity');
    expect(scheduled.activityType.name).toBe('fetchBatch');
    scheduled.activityType.name = 'uploadItem';
    await expect(
      Worker.runReplayHistory(
        { workflowBundle: await workflowBundle(), dataConverter: testDataConverter(), replayName: 'tampered' },
        history,
      ),
    ).rejects.toBeInstanceOf(DeterminismViolationError);
  });
});
