import { createHash } from 'node:crypto';
import type { AccountState } from './context.js';
import type { EmulatorTeamInit } from './types.js';
import { ApiFailure, badInput, type Tagged } from './wire.js';

/**
 * Namespaces and `Dropbox-API-Path-Root`. A plain account has one namespace, its home, which is
 * also its root. A team member of a team space has the team's root namespace beside its home: a
 * request reaches it only with the header `{".tag": "root", "root": "<root_namespace_id>"}` (or
 * `{".tag": "namespace_id", ...}`); without it, paths resolve in the member's home namespace.
 */

/** The account's home namespace id: stable per account, so restarts describe the same user. */
export function homeNamespaceId(account: AccountState): string {
  return String(createHash('sha256').update(account.id).digest().readUInt32BE(0) % 4_000_000_000);
}

/** `users/get_current_account`'s `root_info` (common.stone RootInfo: TeamRootInfo or UserRootInfo). */
export function rootInfo(account: AccountState): Record<string, unknown> {
  const home = homeNamespaceId(account);
  const team = account.team;
  if (!team) return { '.tag': 'user', root_namespace_id: home, home_namespace_id: home };
  return {
    '.tag': 'team',
    root_namespace_id: team.rootNamespaceId,
    home_namespace_id: home,
    home_path: team.homePath ?? `/${account.name ?? account.id}`,
  };
}

/** Checks an account's team settings; throws TypeError naming the field. */
export function checkTeam(team: unknown): EmulatorTeamInit {
  const t = team as Partial<EmulatorTeamInit> | null;
  if (typeof t !== 'object' || t === null) throw new TypeError('team must be an object');
  if (typeof t.rootNamespaceId !== 'string' || !/^[0-9]+$/.test(t.rootNamespaceId))
    throw new TypeError(`team.rootNamespaceId must be a string of digits, got ${JSON.stringify(t.rootNamespaceId)}`);
  if (t.homePath !== undefined && (typeof t.homePath !== 'string' || !t.homePath.startsWith('/')))
    throw new TypeError(`team.homePath must start with "/", got ${JSON.stringify(t.homePath)}`);
  return { rootNamespaceId: t.rootNamespaceId, ...(t.homePath !== undefined ? { homePath: t.homePath } : {}) };
}

/** The store key of a team's root namespace; the home namespace is keyed by the account id. */
export function teamSpaceKey(rootNamespaceId: string): string {
  return `ns:${rootNamespaceId}`;
}

/** 422 with a PathRootError; RootInfo has subtypes, so it nests under its tag's name. */
function pathRootError(error: Tagged): ApiFailure {
  return new ApiFailure(422, { error_summary: `${error['.tag']}/`, error });
}

/**
 * The store key the request's paths resolve in, from its `Dropbox-API-Path-Root` header (undefined:
 * the home namespace). A root other than the account's gets `invalid_root` with its root info; a
 * namespace it cannot see gets `no_permission`; a header that is not a PathRoot gets a 400.
 */
export function resolvePathRoot(route: string, account: AccountState, header: string | undefined): string {
  if (header === undefined) return account.id;
  let value: unknown;
  try {
    value = JSON.parse(header);
  } catch {
    throw badInput(route, `Invalid value in HTTP header "Dropbox-API-Path-Root": could not decode input as JSON`);
  }
  const root = value as { '.tag'?: unknown; root?: unknown; namespace_id?: unknown } | null;
  const tag = typeof root === 'object' && root !== null ? root['.tag'] : undefined;
  const home = homeNamespaceId(account);
  const teamRoot = account.team?.rootNamespaceId;
  const keyOf = (namespaceId: string): string | undefined =>
    namespaceId === home ? account.id : namespaceId === teamRoot ? teamSpaceKey(namespaceId) : undefined;
  if (tag === 'home') return account.id;
  if (tag === 'root' && typeof root?.root === 'string') {
    if (root.root !== (teamRoot ?? home))
      throw pathRootError({ '.tag': 'invalid_root', invalid_root: rootInfo(account) });
    return keyOf(root.root) as string;
  }
  if (tag === 'namespace_id' && typeof root?.namespace_id === 'string') {
    const key = keyOf(root.namespace_id);
    if (key === undefined) throw pathRootError({ '.tag': 'no_permission' });
    return key;
  }
  throw badInput(
    route,
    `Invalid value in HTTP header "Dropbox-API-Path-Root": ${JSON.stringify(header.slice(0, 80))}: expected {".tag": "home"}, {".tag": "root", "root": …} or {".tag": "namespace_id", "namespace_id": …}`,
  );
}
