import { afterAll, beforeAll } from 'vitest';
import { startDropboxEmulator, type DropboxEmulator, type EmulatorOptions } from 'dropbox-emulator';
import { createActivities, type Activities } from '../../activities/index.js';
import type { ActivityDeps } from '../../activities/types.js';
import { startMediaServer, type MediaServer } from '../../dev/media-server.js';
import { testKeyring } from './secret-keys.js';
import { freshDatabase, type TestDatabase } from './stack.js';

export interface ActivityStack {
  database: TestDatabase;
  emulator: DropboxEmulator;
  media: MediaServer;
  /** The activities, called directly (no worker): on the stack's database, emulator and test keyring. */
  activities: Activities;
}

export interface ActivityStackOptions {
  emulator?: EmulatorOptions;
  /** Activity options beside the stack's database, keyring and emulator. */
  activities?: Partial<Omit<ActivityDeps, 'db' | 'keyring' | 'dropboxApiBase'>>;
}

/**
 * What the tests of activities need, started before the file's tests and stopped after them: a
 * fresh database, the Dropbox emulator, the media server, and the activities bound to them (no
 * Temporal). Its fields are set once the file's beforeAll has run.
 */
export function useActivityStack(options: ActivityStackOptions = {}): ActivityStack {
  const stack = {} as ActivityStack;
  beforeAll(async () => {
    [stack.database, stack.emulator, stack.media] = await Promise.all([
      freshDatabase(),
      startDropboxEmulator(options.emulator ?? {}),
      startMediaServer(),
    ]);
    stack.activities = createActivities({
      db: stack.database.db,
      keyring: testKeyring(),
      dropboxApiBase: stack.emulator.url,
      ...options.activities,
    });
  });
  afterAll(async () => {
    await Promise.allSettled([stack.database?.close(), stack.emulator?.stop(), stack.media?.stop()]);
  });
  return stack;
}
