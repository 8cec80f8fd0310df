import { readFileSync } from 'node:fs';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../dev/ports.js';

/** Linux's source-port range for outgoing connections. */
const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number) as [
  number,
  number,
];

const binds = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
  });

describe('freePort', () => {
  it("offers ports outside the kernel's ephemeral range, so an outgoing connection cannot take one before its server binds it", async () => {
    const ports = await Promise.all(Array.from({ length: 30 }, () => freePort()));
    for (const port of ports) expect(port < low || port > high, `port ${port} in ${low}–${high}`).toBe(true);
    expect(await binds(ports[0] as number)).toBe(true);
  });

  it('offers only ports below a bound when asked (a Temporal membership port goes into a smallint column)', async () => {
    for (let i = 0; i < 20; i++) expect(await freePort({ below: 32_768 })).toBeLessThan(32_768);
  });

  it('says so when no port in bounds is free', async () => {
    // Below 10,001 only 10,000 is in bounds, and it is taken.
    const holder = net.createServer();
    const taken = await new Promise<boolean>((resolve) => {
      holder.once('error', () => resolve(false));
      holder.listen({ host: '127.0.0.1', port: 10_000, exclusive: true }, () => resolve(true));
    });
    try {
      if (taken)
        await expect(freePort({ below: 10_001 })).rejects.toThrow(/no free port on 127.0.0.1 between 10000 and 10001/);
    } finally {
      holder.close();
    }
  });
});
