import { createHash } from 'node:crypto';
import { LIST_PATH_PATTERN, parseCommitInfo, READ_PATH_PATTERN, slashPath, WRITE_PATH_PATTERN } from './args.js';
import { finishBatch, finishBatchCheck, finishBatchV2 } from './batch.js';
import {
  ContentResult,
  enterCommit,
  refuseIfContended,
  type AccountState,
  type CallContext,
  type RouteSpec,
} from './context.js';
import { continueListing, decodeCursor, startListing } from './listing.js';
import { rootInfo } from './path-root.js';
import { appendV2, finish, start, startBatch } from './session-routes.js';
import { fileMetadata, splitPath, taggedMetadata, type EntryNode } from './store.js';
import { badInput, newOpaqueId, routeError } from './wire.js';

const DEFAULT_LIST_LIMIT = 500;

async function upload(ctx: CallContext): Promise<unknown> {
  const { args, body, core, accountId, spaceId } = ctx;
  const commit = parseCommitInfo(args);
  const expectedHash = args.contentHash();
  if (body.size > core.maxRequestBytes) throw routeError({ '.tag': 'payload_too_large' });
  const contentHash = body.contentHash as string;
  if (expectedHash !== undefined && expectedHash !== contentHash) throw routeError({ '.tag': 'content_hash_mismatch' });
  const cfg = core.config(accountId);
  const lease = enterCommit(ctx.account);
  try {
    const contended = {
      '.tag': 'path',
      reason: { '.tag': 'too_many_write_operations' },
      upload_session_id: newOpaqueId(),
    };
    refuseIfContended(ctx, lease, cfg, '429', contended);
    refuseIfContended(ctx, lease, cfg, '409', contended);
    await core.sleep(cfg.commitLatencyMs);
    const content = core.keepContent ? body.bytes : undefined;
    const result = core.store.write(spaceId, {
      ...commit,
      size: body.size,
      contentHash,
      content,
      quotaBytes: cfg.quotaBytes,
    });
    // UploadError.path is a struct (UploadWriteFailed), so its fields sit beside the tag.
    if (!result.ok) throw routeError({ '.tag': 'path', reason: result.reason, upload_session_id: newOpaqueId() });
    return fileMetadata(result.file);
  } finally {
    lease.release();
  }
}

/** get_metadata and download: a path or id that must name an existing entry. */
function lookupEntry(ctx: CallContext, pattern: string): EntryNode {
  const { args, core, spaceId } = ctx;
  const raw = args.string('path');
  if (raw === '' || raw === '/') throw args.fail('path: The root folder is unsupported.');
  const path = raw.startsWith('id:') ? raw : slashPath(args, 'path', raw, pattern);
  if (!path.startsWith('id:') && !splitPath(path)) {
    throw routeError({ '.tag': 'path', path: { '.tag': 'malformed_path', malformed_path: null } });
  }
  const node = core.store.lookup(spaceId, path.toLowerCase());
  if (!node) throw routeError({ '.tag': 'path', path: { '.tag': 'not_found' } });
  return node;
}

function getMetadata(ctx: CallContext): unknown {
  return taggedMetadata(lookupEntry(ctx, WRITE_PATH_PATTERN));
}

function download(ctx: CallContext): unknown {
  ctx.args.string('rev', true);
  const node = lookupEntry(ctx, READ_PATH_PATTERN);
  if (node.kind === 'folder') throw routeError({ '.tag': 'path', path: { '.tag': 'not_file' } });
  const bytes = ctx.core.store.contentOf(node);
  // Not a Dropbox error: the operator chose not to keep bytes, which no retry can fix (hence 400).
  if (!bytes)
    throw badInput(
      ctx.route,
      'the emulator does not keep file content (keepContent: false), so it cannot serve downloads',
    );
  return new ContentResult(fileMetadata(node), bytes);
}

function listFolder({ args, core, spaceId }: CallContext): unknown {
  const raw = args.string('path');
  if (raw === '/') throw args.fail('path: Specify the root folder as an empty string rather than as "/".');
  const path = raw === '' || raw.startsWith('id:') ? raw : slashPath(args, 'path', raw, LIST_PATH_PATTERN);
  const recursive = args.bool('recursive', false);
  const limit = args.int('limit', 1, 2000) ?? DEFAULT_LIST_LIMIT;
  if (path.startsWith('/') && !splitPath(path)) {
    throw routeError({ '.tag': 'path', path: { '.tag': 'malformed_path', malformed_path: null } });
  }
  const node = core.store.lookup(spaceId, path.toLowerCase());
  if (node === undefined) throw routeError({ '.tag': 'path', path: { '.tag': 'not_found' } });
  if (node?.kind === 'file') throw routeError({ '.tag': 'path', path: { '.tag': 'not_folder' } });
  return startListing(core.store.space(spaceId), spaceId, node?.pathLower ?? '', recursive, limit);
}

function listFolderContinue({ args, core, spaceId }: CallContext): unknown {
  const state = decodeCursor(args.string('cursor'));
  if (!state || state.a !== spaceId) throw args.fail('cursor: Invalid cursor');
  return continueListing(core.store.space(spaceId), state);
}

/** Stable per account, so repeated calls (and restarts) describe the same user. */
export function accountJson(account: AccountState): Record<string, unknown> {
  const digest = createHash('sha256').update(account.id).digest();
  const short = digest.toString('hex').slice(0, 6);
  const display = account.name ?? `Emulated User ${short}`;
  const [given = display, ...rest] = display.split(' ');
  const surname = rest.join(' ');
  return {
    account_id: account.id,
    name: {
      given_name: given,
      surname,
      familiar_name: given,
      display_name: display,
      abbreviated_name: `${given.charAt(0)}${surname.charAt(0)}`.toUpperCase(),
    },
    email: account.email ?? `user-${short}@example.com`,
    email_verified: true,
    disabled: false,
    country: 'US',
    locale: 'en',
    referral_link: `https://www.dropbox.com/referrals/AA${digest.toString('base64url').slice(0, 30)}`,
    is_paired: false,
    account_type: { '.tag': 'basic' },
    root_info: rootInfo(account),
  };
}

function tokenRevoke(ctx: CallContext): unknown {
  ctx.core.revokeToken(ctx.token);
  return null;
}

const WRITE = 'files.content.write';
const READ_META = 'files.metadata.read';

export const ROUTES: ReadonlyMap<string, RouteSpec> = new Map<string, RouteSpec>([
  ['files/upload', { style: 'upload', limited: true, scope: WRITE, handler: upload }],
  ['files/upload_session/start', { style: 'upload', limited: true, scope: WRITE, handler: start }],
  ['files/upload_session/append_v2', { style: 'upload', limited: true, scope: WRITE, handler: appendV2 }],
  ['files/upload_session/finish', { style: 'upload', limited: true, scope: WRITE, handler: finish }],
  ['files/upload_session/start_batch', { style: 'rpc', limited: true, scope: WRITE, handler: startBatch }],
  ['files/upload_session/finish_batch_v2', { style: 'rpc', limited: true, scope: WRITE, handler: finishBatchV2 }],
  ['files/upload_session/finish_batch', { style: 'rpc', limited: true, scope: WRITE, handler: finishBatch }],
  ['files/upload_session/finish_batch/check', { style: 'rpc', scope: WRITE, handler: finishBatchCheck }],
  ['files/download', { style: 'download', scope: 'files.content.read', handler: download }],
  ['files/get_metadata', { style: 'rpc', scope: READ_META, handler: getMetadata }],
  ['files/list_folder', { style: 'rpc', scope: READ_META, handler: listFolder }],
  ['files/list_folder/continue', { style: 'rpc', scope: READ_META, handler: listFolderContinue }],
  [
    'users/get_current_account',
    { style: 'rpc', noArgs: true, scope: 'account_info.read', handler: (ctx) => accountJson(ctx.account) },
  ],
  ['auth/token/revoke', { style: 'rpc', noArgs: true, handler: tokenRevoke }],
]);

/** Session routes need the request's bytes after validation; files/upload only when keeping content. */
export function buffersBody(route: string, keepContent: boolean): boolean {
  return route.startsWith('files/upload_session/') || (route === 'files/upload' && keepContent);
}
