import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for the telephony system's media store: serves deterministic synthetic bytes at
 * `/synthetic/<name>?bytes=N`, the same bytes for the same name and size on every request, so
 * uploads stream from a real URL exactly as in production and tests can recompute the content.
 */
export interface MediaServer {
  readonly url: string;
  stop(): Promise<void>;
}

/** Largest synthetic item served; keeps a typo in a seed from allocating gigabytes. */
const MAX_SYNTHETIC_BYTES = 512 * 1024 * 1024;

/** The synthetic content for a name: an xorshift32 stream seeded from the name (FNV-1a). */
export function syntheticContent(name: string, bytes: number): Buffer {
  let seed = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) seed = Math.imul(seed ^ name.charCodeAt(i), 0x01000193) >>> 0;
  let x = seed || 1;
  const words = new Uint32Array(Math.ceil(bytes / 4));
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return Buffer.from(words.buffer, 0, bytes);
}

export function syntheticUrl(mediaBase: string, name: string, bytes: number): string {
  return `${mediaBase.replace(/\/+$/, '')}/synthetic/${encodeURIComponent(name)}?bytes=${bytes}`;
}

/**
 * Ways a source can misbehave, for tests and the chaos suite: an HTTP status, an answer that never
 * comes (`hang`), a body that stops half-way and stays open (`stall`), and a body shorter than its
 * Content-Length (`short`).
 */
export const SOURCE_FAULTS = ['500', '503', '404', '410', 'hang', 'stall', 'short'] as const;
export type SourceFault = (typeof SOURCE_FAULTS)[number];

/**
 * The URL of synthetic content that misbehaves as `fault` for its first `times` requests and is
 * served normally after that (`times` omitted: always misbehaves).
 */
export function faultyUrl(mediaBase: string, fault: SourceFault, name: string, bytes: number, times?: number): string {
  const url = `${mediaBase.replace(/\/+$/, '')}/fault/${fault}/${encodeURIComponent(name)}?bytes=${bytes}`;
  return times === undefined ? url : `${url}&times=${times}`;
}

export async function startMediaServer(options: { port?: number } = {}): Promise<MediaServer> {
  // Requests seen per faulty URL, so a fault can heal after its first `times` requests.
  const faultRequests = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://media.local');
    const match = /^\/(?:synthetic|fault\/([a-z0-9]+))\/([^/]+)$/.exec(url.pathname);
    const bytes = Number(url.searchParams.get('bytes'));
    if (req.method !== 'GET' || !match?.[2]) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    if (!Number.isInteger(bytes) || bytes < 0 || bytes > MAX_SYNTHETIC_BYTES) {
      res
        .writeHead(400, { 'content-type': 'text/plain' })
        .end(`bytes must be an integer from 0 to ${MAX_SYNTHETIC_BYTES}\n`);
      return;
    }
    const body = syntheticContent(decodeURIComponent(match[2]), bytes);
    const fault = match[1] as SourceFault | undefined;
    if (fault !== undefined) {
      const seen = (faultRequests.get(url.href) ?? 0) + 1;
      faultRequests.set(url.href, seen);
      const times = url.searchParams.has('times') ? Number(url.searchParams.get('times')) : Infinity;
      if (seen <= times && misbehave(fault, body, res)) return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.byteLength }).end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Answers as `fault` would; false for an unknown fault, which is then served normally. */
function misbehave(fault: SourceFault, body: Buffer, res: ServerResponse): boolean {
  const half = body.subarray(0, Math.floor(body.byteLength / 2));
  switch (fault) {
    case '500':
    case '503':
    case '404':
    case '410':
      res.writeHead(Number(fault), { 'content-type': 'text/plain' }).end(`synthetic ${fault}\n`);
      return true;
    case 'hang':
      return true;
    case 'stall':
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.byteLength });
      res.write(half);
      return true;
    case 'short':
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.byteLength });
      res.write(half, () => res.destroy());
      return true;
    default:
      return false;
  }
}
