import { readFileSync } from 'node:fs';
import net from 'node:net';

/** The lowest port freePort offers. */
const LOWEST_PORT = 10_000;

/**
 * The ports the kernel hands out as source ports of outgoing connections (Linux's
 * ip_local_port_range), or undefined where that cannot be read.
 */
function ephemeralRange(): [number, number] | undefined {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return low !== undefined && high !== undefined && Number.isInteger(low) && Number.isInteger(high)
      ? [low, high]
      : undefined;
  } catch {
    return undefined;
  }
}

/** Binds `port` on 127.0.0.1 (0: any the kernel picks) and lets it go; the port it got, or undefined if taken. */
function tryPort(port: number): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(undefined));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => {
      const address = server.address();
      const bound = address !== null && typeof address !== 'string' ? address.port : undefined;
      server.close((err) => (err ? reject(err) : resolve(bound)));
    });
  });
}

/**
 * A currently unused TCP port on 127.0.0.1, outside the kernel's ephemeral range where it can
 * tell: a server we start binds the port some time later (a Temporal Server binds its services'
 * ports after it has opened its Postgres connections), and a port the kernel picked is one it may
 * meanwhile give an outgoing connection as its source port, which then fails that bind with
 * "address already in use". `below`: the port must be lower than this.
 *
 * The port is released again before this resolves, so another process could still take it.
 */
export async function freePort(options: { below?: number } = {}): Promise<number> {
  const below = options.below ?? 65_536;
  const [low, high] = ephemeralRange() ?? [32_768, 60_999];
  for (let attempt = 0; attempt < 400; attempt++) {
    const port = LOWEST_PORT + Math.floor(Math.random() * (below - LOWEST_PORT));
    if (port >= low && port <= high) continue;
    const bound = await tryPort(port);
    if (bound !== undefined) return bound;
  }
  const any = options.below === undefined ? await tryPort(0) : undefined;
  if (any !== undefined) return any;
  throw new Error(`no free port on 127.0.0.1 between ${LOWEST_PORT} and ${below}`);
}
