import { readFileSync } from 'node:fs';
import net from 'node:net';

/** Where freePort looks first, and the ports it never offers below. */
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

function listens(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Asks the kernel for any unused port: one in its ephemeral range. */
function kernelPort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('freePort: could not read the port the kernel assigned'));
        return;
      }
      const { port } = address;
      server.close((err) => (err ? reject(err) : resolve(port)));
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
  const range = ephemeralRange() ?? [32_768, 60_999];
  const spans = [
    [LOWEST_PORT, Math.min(below, range[0])],
    [Math.max(LOWEST_PORT, range[1] + 1), below],
  ].filter(([low, high]) => (high as number) > (low as number)) as Array<[number, number]>;
  const size = spans.reduce((n, [low, high]) => n + high - low, 0);
  for (let attempt = 0; attempt < 200 && size > 0; attempt++) {
    let pick = Math.floor(Math.random() * size);
    for (const [low, high] of spans) {
      if (pick < high - low) {
        if (await listens(low + pick)) return low + pick;
        break;
      }
      pick -= high - low;
    }
  }
  if (options.below === undefined) return kernelPort();
  throw new Error(`no free port on 127.0.0.1 between ${LOWEST_PORT} and ${below}`);
}
