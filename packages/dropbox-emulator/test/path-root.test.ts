import { Dropbox } from 'dropbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDropboxEmulator, type DropboxEmulator } from '../src/index.js';
import { adminCall, fetchRewritingTo, rawCall } from './support/calls.js';

describe('team spaces and Dropbox-API-Path-Root', () => {
  let emu: DropboxEmulator;
  const TEAM_ROOT = '7000000001';

  beforeAll(async () => {
    emu = await startDropboxEmulator({
      accounts: [
        { token: 'sl.member', accountId: 'dbid:member', name: 'Ada Lovelace', team: { rootNamespaceId: TEAM_ROOT } },
        { token: 'sl.colleague', accountId: 'dbid:colleague', team: { rootNamespaceId: TEAM_ROOT, homePath: '/Bob' } },
        { token: 'sl.user', accountId: 'dbid:user' },
      ],
    });
  });
  afterAll(() => emu.stop());

  const account = async (token: string) =>
    (await rawCall(emu.url, 'users/get_current_account', { token })).json as {
      root_info: { '.tag': string; root_namespace_id: string; home_namespace_id: string; home_path?: string };
    };
  const upload = (token: string, path: string, pathRoot?: unknown) =>
    rawCall(emu.url, 'files/upload', {
      token,
      arg: { path },
      body: 'team bytes',
      ...(pathRoot === undefined
        ? {}
        : { headers: { 'Dropbox-API-Path-Root': typeof pathRoot === 'string' ? pathRoot : JSON.stringify(pathRoot) } }),
    });

  it('root_info: a team member has a team root namespace apart from its home; a user has one namespace', async () => {
    const member = (await account('sl.member')).root_info;
    expect(member).toEqual({
      '.tag': 'team',
      root_namespace_id: TEAM_ROOT,
      home_namespace_id: expect.stringMatching(/^[0-9]+$/),
      home_path: '/Ada Lovelace',
    });
    expect(member.home_namespace_id).not.toBe(TEAM_ROOT);
    expect((await account('sl.colleague')).root_info).toMatchObject({
      root_namespace_id: TEAM_ROOT,
      home_path: '/Bob',
    });
    const user = (await account('sl.user')).root_info;
    expect(user).toEqual({
      '.tag': 'user',
      root_namespace_id: user.home_namespace_id,
      home_namespace_id: expect.stringMatching(/^[0-9]+$/),
    });
  });

  it('with the root header, paths resolve in the team space, shared by the team; without it, in the home namespace', async () => {
    const root = { '.tag': 'root', root: TEAM_ROOT };
    expect((await upload('sl.member', '/Archive/team.txt', root)).status).toBe(200);
    expect((await upload('sl.member', '/Archive/home.txt')).status).toBe(200);
    expect(emu.files(`ns:${TEAM_ROOT}`).map((f) => f.pathDisplay)).toEqual(['/Archive/team.txt']);
    expect(emu.files('dbid:member').map((f) => f.pathDisplay)).toEqual(['/Archive/home.txt']);
    // The SDK's pathRoot option sends the header; a colleague sees the same team space.
    const colleague = new Dropbox({
      accessToken: 'sl.colleague',
      pathRoot: JSON.stringify(root),
      fetch: fetchRewritingTo(emu.url),
    });
    const listed = await colleague.filesListFolder({ path: '/Archive' });
    expect(listed.result.entries.map((e) => e.path_display)).toEqual(['/Archive/team.txt']);
    expect((await colleague.filesGetMetadata({ path: '/Archive/team.txt' })).result.name).toBe('team.txt');
    // namespace_id names either namespace the member can see; home is the home namespace.
    const home = (await account('sl.member')).root_info.home_namespace_id;
    const byId = await upload('sl.member', '/Archive/by-id.txt', { '.tag': 'namespace_id', namespace_id: TEAM_ROOT });
    expect(byId.status).toBe(200);
    expect((await upload('sl.member', '/h2.txt', { '.tag': 'namespace_id', namespace_id: home })).status).toBe(200);
    expect((await upload('sl.member', '/h3.txt', { '.tag': 'home' })).status).toBe(200);
    expect(emu.files(`ns:${TEAM_ROOT}`)).toHaveLength(2);
    expect(emu.files('dbid:member')).toHaveLength(3);
  });

  it("answers a root that is not the account's 422 invalid_root with its root info, and a foreign namespace 422 no_permission", async () => {
    const wrongRoot = await upload('sl.user', '/x.txt', { '.tag': 'root', root: TEAM_ROOT });
    const user = (await account('sl.user')).root_info;
    expect({ status: wrongRoot.status, json: wrongRoot.json }).toEqual({
      status: 422,
      json: {
        error_summary: expect.stringMatching(/^invalid_root\/\.{0,3}$/),
        error: { '.tag': 'invalid_root', invalid_root: user },
      },
    });
    const foreign = await upload('sl.user', '/x.txt', { '.tag': 'namespace_id', namespace_id: TEAM_ROOT });
    expect({ status: foreign.status, json: foreign.json }).toEqual({
      status: 422,
      json: { error_summary: expect.stringMatching(/^no_permission\/\.{0,3}$/), error: { '.tag': 'no_permission' } },
    });
    // A user's root is its home: naming it works.
    expect((await upload('sl.user', '/y.txt', { '.tag': 'root', root: user.root_namespace_id })).status).toBe(200);
    const garbled = await upload('sl.user', '/x.txt', 'not json');
    expect(garbled.status).toBe(400);
    expect(garbled.text).toContain('Dropbox-API-Path-Root');
    expect(emu.files('dbid:user').map((f) => f.pathDisplay)).toEqual(['/y.txt']);
  });

  it('makes a team member over the admin API too', async () => {
    const added = await adminCall(emu.url, 'accounts', {
      token: 'sl.admin-team',
      team: { rootNamespaceId: TEAM_ROOT },
    });
    expect(added.status).toBe(200);
    expect((await account('sl.admin-team')).root_info).toMatchObject({ '.tag': 'team', root_namespace_id: TEAM_ROOT });
    const bad = await adminCall(emu.url, 'accounts', { token: 'sl.admin-bad', team: { rootNamespaceId: 7 } });
    expect(bad).toMatchObject({ status: 400, json: { error: expect.stringContaining('team.rootNamespaceId') } });
  });

  it('rejects a team without a numeric root namespace id', () => {
    expect(() => emu.addAccount({ token: 'sl.bad', team: { rootNamespaceId: 'team' } })).toThrow(
      /team.rootNamespaceId must be a string of digits/,
    );
  });
});
