// What one activity attempt does besides its work: waits for its paced start time, heartbeats,
// and picks up the upload-session progress its previous attempt heartbeated.

import { activityInfo, heartbeat, sleep } from '@temporalio/activity';
import type { SessionProgress } from './sessions.js';

/** Well inside the upload activities' 8 s heartbeat timeout, so a dead worker is noticed within it. */
const HEARTBEAT_INTERVAL_MS = 2_000;
/** Longest wait for a start time: guards against a clock far off from the workflow's. */
const MAX_START_WAIT_MS = 60_000;

/** Waits for the start time the pacing controller gave this upload (heartbeats keep running meanwhile). */
export async function waitForStartTime(startAt: number | undefined): Promise<void> {
  const waitMs = startAt === undefined ? 0 : Math.min(MAX_START_WAIT_MS, startAt - Date.now());
  if (waitMs > 0) await sleep(waitMs); // ends early, throwing, if the activity is cancelled
}

/** Upload-session progress of this activity's previous attempt, if it heartbeated any. */
export function resumeFrom(): SessionProgress | undefined {
  const details = activityInfo().heartbeatDetails as SessionProgress | undefined;
  return details && typeof details.sessionId === 'string' && details.sessionId !== '' ? details : undefined;
}

/**
 * Runs an upload while heartbeating, so Temporal notices a dead worker within the heartbeat
 * timeout and the next attempt learns how far a session upload got.
 */
export async function withHeartbeats<T>(work: (report: (progress: SessionProgress) => void) => Promise<T>): Promise<T> {
  let progress: SessionProgress | undefined = resumeFrom();
  const ticker = setInterval(() => heartbeat(progress), HEARTBEAT_INTERVAL_MS);
  try {
    return await work((next) => {
      progress = next;
      heartbeat(progress);
    });
  } finally {
    clearInterval(ticker);
  }
}
