import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { DeterminismViolationError } from '@temporalio/workflow';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { RATE_BASED_PACING, VERIFY_CREDENTIALS_ON_RESUME } from '../workflows/archive-customer.js';
import { HISTORIES_DIR } from './support/harness.js';
import { workflowBundle } from './support/stack.js';

/**
 * Histories recorded from real runs (`npm run record-histories`), replayed against today's workflow
 * code. Those in before-rate-pacing/ were recorded before the RATE_BASED_PACING patch and are kept
 * as they are: they show runs started on the old code still replay.
 */
const BEFORE_RATE_PACING = 'before-rate-pacing';
const files = readdirSync(HISTORIES_DIR, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.json')).sort();

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
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle(), replayName: file }, history);
  });

  // Patch markers carry the patch id in their payload, as JSON.
  const markers = (file: string) => (load(file).events ?? [])
    .filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch')
    .flatMap((e) => Object.values(e.markerRecordedEventAttributes?.details ?? {}).flatMap((p) => p.payloads ?? []))
    .map((payload) => Buffer.from(payload.data ?? []).toString('utf8'))
    .join();

  it(`covers both sides of the ${VERIFY_CREDENTIALS_ON_RESUME} patch`, () => {
    // Recorded before the change: a resume from needs-reauth without the credential check.
    expect(markers(`${BEFORE_RATE_PACING}/needs-reauth.json`)).toBe('');
    // Recorded after it: the marker, then the check.
    expect(markers(`${BEFORE_RATE_PACING}/resume-checks-credentials.json`)).toContain(`"id":"${VERIFY_CREDENTIALS_ON_RESUME}"`);
  });

  it(`covers both sides of the ${RATE_BASED_PACING} patch`, () => {
    const before = files.filter((f) => f.startsWith(`${BEFORE_RATE_PACING}/`));
    const after = files.filter((f) => !f.startsWith(`${BEFORE_RATE_PACING}/`));
    expect(before.length).toBeGreaterThanOrEqual(5);
    expect(after.length).toBeGreaterThanOrEqual(5);
    for (const f of before) expect(markers(f), f).not.toContain(RATE_BASED_PACING);
    for (const f of after) expect(markers(f), f).toContain(`"id":"${RATE_BASED_PACING}"`);
  });

  it('detects history the current code would not produce (the check can fail)', async () => {
    const history = load(files[0] as string);
    // Pretend the recorded run scheduled a different first activity than today's code does.
    const scheduled = history.events?.find((e) => e.activityTaskScheduledEventAttributes)?.activityTaskScheduledEventAttributes;
    if (!scheduled?.activityType) throw new Error('recorded history schedules no activity');
    expect(scheduled.activityType.name).toBe('fetchBatch');
    scheduled.activityType.name = 'uploadItem';
    await expect(Worker.runReplayHistory({ workflowBundle: await workflowBundle(), replayName: 'tampered' }, history))
      .rejects.toBeInstanceOf(DeterminismViolationError);
  });
});
