// The codec server: Temporal's Web UI (and `temporal` CLI) send it the payloads they show, and it
// answers with them opened, for those who hold its bearer token. It speaks Temporal's remote codec
// protocol: POST /encode and /decode with `{"payloads": [...]}` in proto3 JSON (bytes as base64).

import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Payload } from '@temporalio/common';
import type { Keyring } from '../secrets/keyring.js';
import { EncryptionCodec } from './payload-codec.js';

/** Largest request body taken, in bytes: a page of history's payloads, not an upload. */
const MAX_BODY_BYTES = 8 * 1024 * 1024;
/** A client that sends its body slower than this is cut off. */
const REQUEST_TIMEOUT_MS = 30_000;

export interface CodecServerOptions {
  keyring: Keyring;
  /**
   * Required of every request: `Authorization: Bearer <token>`, or the token as the path's first
   * segment (`/<token>/decode`), for a Web UI that has no sign-in to send a header with.
   */
  token: string;
  /** Browser origins allowed to call it (CORS), e.g. the Web UI's `http://127.0.0.1:8233`. */
  origins: readonly string[];
  /** @default 127.0.0.1 */
  host?: string;
  /** @default a free port */
  port?: number;
}

export interface CodecServer {
  /** `http://host:port`, without the token. */
  url: string;
  close(): Promise<void>;
}

interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}

class RequestRefused extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const fromJson = (p: JsonPayload): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  data: Buffer.from(p.data ?? '', 'base64'),
});

const toJson = (p: Payload): JsonPayload => ({
  metadata: Object.fromEntries(
    Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')]),
  ),
  data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
});

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new RequestRefused(413, `request body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parsePayloads(body: string): Payload[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new RequestRefused(400, 'body is not JSON; expected {"payloads": [...]}');
  }
  const payloads = (parsed as { payloads?: unknown } | null)?.payloads;
  if (!Array.isArray(payloads)) throw new RequestRefused(400, 'body has no "payloads" array');
  return (payloads as JsonPayload[]).map(fromJson);
}

/** Starts the codec server; it refuses requests without the token and browsers of other origins. */
export async function startCodecServer(options: CodecServerOptions): Promise<CodecServer> {
  if (options.token.length < 16) throw new Error('the codec server token must be at least 16 characters');
  const codec = new EncryptionCodec(options.keyring);
  const origins = new Set(options.origins);

  const answer = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const origin = req.headers.origin;
    if (origin !== undefined && origins.has(origin)) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Vary', 'Origin');
      res.setHeader('Access-Control-Allow-Headers', 'Content-Type, Authorization, X-Namespace');
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Credentials', 'true');
    }
    // A preflight carries no token; the request it clears must.
    if (req.method === 'OPTIONS') {
      res.writeHead(origin !== undefined && origins.has(origin) ? 204 : 403).end();
      return;
    }
    if (origin !== undefined && !origins.has(origin)) throw new RequestRefused(403, `origin ${origin} is not allowed`);
    const segments = new URL(req.url ?? '/', 'http://codec').pathname.split('/').filter(Boolean);
    const header = req.headers.authorization ?? '';
    const bearer = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : undefined;
    const inPath = segments.length === 2 ? segments[0] : undefined;
    const given = bearer ?? inPath;
    if (given === undefined || !sameSecret(given, options.token))
      throw new RequestRefused(401, 'a bearer token is required');
    const route = segments.at(-1);
    if (req.method !== 'POST' || (route !== 'encode' && route !== 'decode') || segments.length > 2)
      throw new RequestRefused(404, 'POST /encode or /decode');
    const payloads = parsePayloads(await readBody(req));
    let out: Payload[];
    try {
      out = route === 'encode' ? await codec.encode(payloads) : await codec.decode(payloads);
    } catch (err) {
      // UnknownSecretKey or SecretUnreadable: the message names a key id, never key material.
      throw new RequestRefused(422, (err as Error).message);
    }
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ payloads: out.map(toJson) }));
  };

  const server: Server = createServer((req, res) => {
    answer(req, res).catch((err: unknown) => {
      const status = err instanceof RequestRefused ? err.status : 500;
      const message = err instanceof RequestRefused ? err.message : 'internal error';
      if (!res.headersSent) res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: message }));
    });
  });
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.headersTimeout = REQUEST_TIMEOUT_MS;
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
