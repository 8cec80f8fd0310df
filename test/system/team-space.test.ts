import { describe, expect, it } from 'vitest';
import { startArchiving, statusWhen } from '../support/harness.js';
import { insertItems } from '../support/items.js';
import { uniqueName } from '../support/stack.js';
import { useArchiverStack } from '../support/archiver-stack.js';
import { expectArchivedExactlyOnce } from '../support/verify.js';

/**
 * A customer whose Dropbox is a Business team space: Archiver learns the account's root_info
 * once per token and addresses the team space's root (Dropbox-API-Path-Root), so the archive lands
 * in the team space, not in the member's home; real Temporal, Postgres and emulator.
 */
const APP = { key: 'team-space-app', secret: 'team-space-secret' };
const stack = useArchiverStack({ emulator: { apps: [APP], seed: 5 }, worker: { dropboxApp: APP } });

let nextRoot = 8_100_000_000;

/** A customer linked by refresh token; with `team`, a member of a team with its own team space. */
async function customer(items: number, team: boolean) {
  const id = uniqueName(team ? 'team' : 'user');
  const refreshToken = uniqueName('rt');
  const rootNamespaceId = String(nextRoot++);
  stack.emulator.addAccount({
    accountId: id,
    refreshToken,
    appKey: APP.key,
    ...(team ? { team: { rootNamespaceId } } : {}),
  });
  await insertItems(stack.database.db, id, undefined, stack.media.url, items);
  await stack.database.db.query('UPDATE customers SET dropbox_refresh_token = $2 WHERE id = $1', [id, refreshToken]);
  return { id, accountId: id, teamSpace: `ns:${rootNamespaceId}` };
}

const requests = (accountId: string, key: string) => stack.emulator.stats().accounts[accountId]?.requests[key] ?? 0;

describe('a customer archiving into a Dropbox team space', () => {
  it("lands a team member's uploads in the team space, learning root_info once per token; a user's stay in its home", async () => {
    const team = await customer(20, true);
    const teamSessions = await customer(10, true);
    const user = await customer(20, false);
    await Promise.all([
      startArchiving(stack.temporal, team.id),
      startArchiving(stack.temporal, teamSessions.id, { commitMode: 'sessions' }),
      startArchiving(stack.temporal, user.id),
    ]);
    for (const [c, n] of [
      [team, 20],
      [teamSessions, 10],
      [user, 20],
    ] as const)
      await statusWhen(stack.temporal.client, c.id, (s) => s.totals.archived === n && s.state === 'idle');

    // files/upload and finish_batch_v2 alike wrote into the team space; the members' homes stayed empty.
    expect(
      await expectArchivedExactlyOnce(stack.database.db, stack.emulator, [{ ...team, accountId: team.teamSpace }]),
    ).toBe(20);
    expect(
      await expectArchivedExactlyOnce(stack.database.db, stack.emulator, [
        { ...teamSessions, accountId: teamSessions.teamSpace },
      ]),
    ).toBe(10);
    expect(stack.emulator.files(team.accountId)).toEqual([]);
    expect(stack.emulator.files(teamSessions.accountId)).toEqual([]);
    // A user's root is its home: no path root, the files are in its own namespace as before.
    expect(await expectArchivedExactlyOnce(stack.database.db, stack.emulator, [user])).toBe(20);
    expect(stack.emulator.files(user.teamSpace)).toEqual([]);
    // One lookup for all of a token's uploads, and no refused path root.
    for (const c of [team, teamSessions, user]) {
      expect(requests(c.accountId, '/2/users/get_current_account 200')).toBe(1);
      expect(Object.keys(stack.emulator.stats().accounts[c.accountId]?.requests ?? {})).not.toContainEqual(
        expect.stringMatching(/ (400|422)$/),
      );
    }
  });

  it('learns the root again when Dropbox refuses the one it learned (422 invalid_root), failing no item', async () => {
    const moved = await customer(10, true);
    const handle = await startArchiving(stack.temporal, moved.id);
    await statusWhen(stack.temporal.client, moved.id, (s) => s.totals.archived === 10 && s.state === 'idle');
    // The member moves to another team's space; Archiver's access token stays the same.
    const newSpace = String(nextRoot++);
    stack.emulator.addAccount({ accountId: moved.accountId, team: { rootNamespaceId: newSpace } });
    await insertItems(stack.database.db, moved.id, undefined, stack.media.url, 5);
    await handle.signal('itemsAvailable');
    const done = await statusWhen(
      stack.temporal.client,
      moved.id,
      (s) => s.totals.archived === 15 && s.state === 'idle',
    );
    expect(done.totals.failed).toBe(0);
    expect(requests(moved.accountId, '/2/files/upload 422')).toBeGreaterThanOrEqual(1);
    expect(requests(moved.accountId, '/2/users/get_current_account 200')).toBe(2);
    expect(stack.emulator.files(moved.teamSpace)).toHaveLength(10);
    expect(stack.emulator.files(`ns:${newSpace}`)).toHaveLength(5);
  });
});
