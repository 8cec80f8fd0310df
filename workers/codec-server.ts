/**
 * `npm run codec-server`: opens Archiver's sealed Temporal payloads for the Web UI and the
 * `temporal` CLI, for whoever holds its bearer token. Configured from the environment.
 */
import { loadSecretKeyring } from './config.js';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { startCodecServer } from '../temporal/codec-server.js';

const USAGE = `usage: npm run codec-server

Serves POST /encode and /decode (Temporal's remote codec protocol) for Archiver's encrypted payloads.
Point the Web UI at it (temporal server start-dev --ui-codec-endpoint http://HOST:PORT/<token>, or the
UI's codec setting), or the CLI (--codec-endpoint http://HOST:PORT --codec-auth "Bearer <token>").

environment:
  ARCHIVER_SECRET_KEYS[_FILE]  the keyring the workers use (required)
  ARCHIVER_CODEC_TOKEN[_FILE]  the bearer token every request must carry, at least 16 characters (required)
  ARCHIVER_CODEC_ORIGINS       comma-separated browser origins allowed to call it (default http://127.0.0.1:8233,http://localhost:8233)
  ARCHIVER_CODEC_ADDRESS       host:port to listen on (default 127.0.0.1:8888)`;

const env = z.object({
  ARCHIVER_CODEC_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  ARCHIVER_CODEC_TOKEN_FILE: z.string().optional(),
  ARCHIVER_CODEC_ORIGINS: z
    .string()
    .default('http://127.0.0.1:8233,http://localhost:8233')
    .transform((s) => s.split(',').map((o) => o.trim()))
    .pipe(
      z.array(
        z
          .url({ protocol: /^https?$/, error: 'each origin must be an http(s) URL, e.g. http://127.0.0.1:8233' })
          .transform((u) => new URL(u).origin),
      ),
    ),
  ARCHIVER_CODEC_ADDRESS: z
    .string()
    .default('127.0.0.1:8888')
    .pipe(z.string().regex(/^[^:\s]+:\d{1,5}$/, 'must be host:port, e.g. 127.0.0.1:8888')),
});

function tokenFrom(e: z.infer<typeof env>): string {
  if (e.ARCHIVER_CODEC_TOKEN && e.ARCHIVER_CODEC_TOKEN_FILE)
    throw new Error('set ARCHIVER_CODEC_TOKEN or ARCHIVER_CODEC_TOKEN_FILE, not both');
  if (e.ARCHIVER_CODEC_TOKEN) return e.ARCHIVER_CODEC_TOKEN;
  if (!e.ARCHIVER_CODEC_TOKEN_FILE)
    throw new Error(
      'ARCHIVER_CODEC_TOKEN is not set: every request must carry this bearer token (e.g. `openssl rand -hex 24`)',
    );
  let token: string;
  try {
    token = readFileSync(e.ARCHIVER_CODEC_TOKEN_FILE, 'utf8').trim();
  } catch (err) {
    throw new Error(
      `ARCHIVER_CODEC_TOKEN_FILE=${e.ARCHIVER_CODEC_TOKEN_FILE} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
    );
  }
  if (token.length < 16) throw new Error('ARCHIVER_CODEC_TOKEN_FILE: the token must be at least 16 characters');
  return token;
}

async function main(): Promise<void> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    console.log(USAGE);
    return;
  }
  const parsed = env.safeParse(process.env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${String(i.path[0])}: ${i.message}`);
    throw new Error(problems.join('; '));
  }
  const address = parsed.data.ARCHIVER_CODEC_ADDRESS;
  const colon = address.lastIndexOf(':');
  const server = await startCodecServer({
    keyring: loadSecretKeyring(),
    token: tokenFrom(parsed.data),
    origins: parsed.data.ARCHIVER_CODEC_ORIGINS,
    host: address.slice(0, colon),
    port: Number(address.slice(colon + 1)),
  });
  console.log(
    JSON.stringify({ time: new Date().toISOString(), level: 'info', message: 'codec server started', url: server.url }),
  );
  const stop = (): void => void server.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  console.error(`archiver codec-server: ${(err as Error).message}`);
  process.exit(2);
});
