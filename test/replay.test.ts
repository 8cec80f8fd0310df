import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { DeterminismViolationError } from '@temporalio/workflow';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { HISTORIES_DIR } from './support/harness.js';
import { workflowBundle } from './support/stack.js';

/** Histories recorded from real runs (`npm run record-histories`), replayed against today's workflow code. */
const files = readdirSync(HISTORIES_DIR).filter((f) => f.endsWith('.json')).sort();

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
