import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DropboxEmulator } from './server.js';
import { readBody, sendJson } from './wire.js';

const ADMIN_BODY_LIMIT = 1024 * 1024;

/**
 * `/__admin/*`: the DropboxEmulator methods over HTTP, for a demo or a separate process. Errors are
 * `{ "error": message }` JSON; admin calls are not counted in the API request stats.
 */
export async function handleAdmin(emulator: DropboxEmulator, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const body = await readBody(req, { keep: true, hash: false, maxKeep: ADMIN_BODY_LIMIT });
  const fail = (status: number, error: string): void => sendJson(res, status, { error });
  const route = `${req.method ?? ''} ${url.pathname}`;
  let input: Record<string, unknown> = {};
  if (req.method === 'POST') {
    try {
      input = JSON.parse(body.bytes?.toString('utf8') || '{}') as Record<string, unknown>;
      if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new Error('not an object');
    } catch {
      return fail(400, 'request body must be a JSON object');
    }
  }
  try {
    switch (route) {
      case 'GET /__admin/files':
        return sendJson(res, 200, emulator.files(url.searchParams.get('account') ?? undefined));
      case 'GET /__admin/stats':
        return sendJson(res, 200, emulator.stats());
      case 'POST /__admin/accounts': {
        const { token, accountId } = input;
        const id = emulator.addAccount({ token: token as string, ...(accountId !== undefined ? { accountId: accountId as string } : {}) });
        return sendJson(res, 200, { token, accountId: id });
      }
      case 'POST /__admin/rate': {
        const rate = input['uploadsPerSecond'];
        if (rate !== null && typeof rate !== 'number') return fail(400, 'uploadsPerSecond must be a positive number or null');
        emulator.setUploadsPerSecond(rate ?? undefined);
        return sendJson(res, 200, { uploadsPerSecond: rate });
      }
      default:
        return fail(404, `no admin route ${route}`);
    }
  } catch (err) {
    // addAccount and setUploadsPerSecond throw on invalid input, which is the caller's fault.
    return fail(400, err instanceof Error ? err.message : String(err));
  }
}
