// Bad environments for the CLI, the worker and `npm start`: each stops with the README's exit
// code, names the part and the variable, never prints a password or a stack, and changes nothing.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listCustomers } from '../../db/customers.js';
import { freePort } from '../../dev/ports.js';
import { connectTemporal, freshDatabase, type TestDatabase, type TestTemporal } from '../support/stack.js';
import { silentServer } from '../support/tcp.js';
import { spawnWorkerProcess } from '../support/worker-process.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PASSWORD = 'hunter2-secret';

let database: TestDatabase;
let temporal: TestTemporal;
let silent: Awaited<ReturnType<typeof silentServer>>;
let closedPort: number;
/** An empty ARCHIVER_DATA_DIR, so no stack file of a running `npm start` is picked up, and none is written. */
let dataDir: string;

beforeAll(async () => {
  [database, temporal, silent, closedPort] = await Promise.all([
    freshDatabase(),
    connectTemporal(),
    silentServer(),
    freePort(),
  ]);
  dataDir = await mkdtemp(join(tmpdir(), 'archiver-bad-env-'));
});
afterAll(async () => {
  await Promise.allSettled([database?.close(), temporal?.close(), silent?.close()]);
  await rm(dataDir, { recursive: true, force: true });
});

/** The test database's URL with another password, host:port or database name. */
function databaseUrl(change: { password?: string; host?: string; database?: string }): string {
  const url = new URL(database.url);
  if (change.password !== undefined) url.password = change.password;
  if (change.host !== undefined) url.host = change.host;
  if (change.database !== undefined) url.pathname = `/${change.database}`;
  return url.href;
}

interface Run {
  code: number | null;
  output: string;
  ms: number;
}

/** Runs a script as users do, with the good environment overridden by `env`. */
async function run(
  args: string[],
  overrides: Record<string, string | undefined>,
  command = process.execPath,
): Promise<Run> {
  const started = Date.now();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ARCHIVER_DATA_DIR: dataDir,
    ARCHIVER_METRICS_ADDRESS: 'off',
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_NAMESPACE: 'default',
    DATABASE_URL: database.url,
    DATABASE_CONNECT_TIMEOUT: '1s',
    TEMPORAL_CONNECT_TIMEOUT: '1s',
    ...overrides,
  };
  for (const [name, value] of Object.entries(env)) if (value === undefined) delete env[name];
  try {
    const { stdout, stderr } = await promisify(execFile)(command, args, {
      cwd: ROOT,
      timeout: 30_000,
      env,
    });
    return { code: 0, output: stdout + stderr, ms: Date.now() - started };
  } catch (err) {
    const e = err as { code: number | null; stdout: string; stderr: string };
    return { code: e.code, output: e.stdout + e.stderr, ms: Date.now() - started };
  }
}

const cli = (args: string[], env: Record<string, string>) => run(['--import', 'tsx', 'client/cli.ts', ...args], env);

function expectNamed(result: Run, code: number, named: RegExp[]): void {
  expect(result.code, result.output).toBe(code);
  for (const pattern of named) expect(result.output).toMatch(pattern);
  expect(result.output).not.toContain(PASSWORD);
  // One message, not a stack trace.
  expect(result.output).not.toMatch(/^\s+at /m);
}

/** Runs `check` and asserts that no customer was added or changed by it. */
async function expectNothingStored(check: () => Promise<void>): Promise<void> {
  const before = await listCustomers(database.db);
  await check();
  expect(await listCustomers(database.db)).toEqual(before);
  expect(await readdir(dataDir)).toEqual([]);
}

const ADD = ['customers', 'add', 'bad-env', '--name', 'Bad Env'];

describe('the CLI with a bad environment', () => {
  const cases: { name: string; args: string[]; env: () => Record<string, string>; code: number; named: RegExp[] }[] = [
    {
      name: 'DATABASE_URL whose host does not resolve',
      args: ADD,
      env: () => ({ DATABASE_URL: `postgres://archiver:${PASSWORD}@no-such-host.invalid/archiver` }),
      code: 1,
      named: [
        /Postgres at no-such-host\.invalid:5432\/archiver \(DATABASE_URL\) has a host name that does not resolve/,
      ],
    },
    {
      name: 'DATABASE_URL with a closed port',
      args: ADD,
      env: () => ({ DATABASE_URL: databaseUrl({ password: PASSWORD, host: `127.0.0.1:${closedPort}` }) }),
      code: 1,
      named: [/Postgres at 127\.0\.0\.1:\d+\/\S+ \(DATABASE_URL\) refused the connection/],
    },
    {
      name: 'DATABASE_URL of a server that accepts TCP and never answers',
      args: ADD,
      env: () => ({ DATABASE_URL: databaseUrl({ password: PASSWORD, host: silent.address }) }),
      code: 1,
      named: [
        /Postgres at 127\.0\.0\.1:\d+\/\S+ \(DATABASE_URL\) did not answer within 1s \(DATABASE_CONNECT_TIMEOUT\)/,
      ],
    },
    {
      name: 'DATABASE_URL with a wrong password',
      args: ADD,
      env: () => ({ DATABASE_URL: databaseUrl({ password: PASSWORD }) }),
      code: 2,
      named: [/Postgres at 127\.0\.0\.1:\d+\/\S+ \(DATABASE_URL\) rejected the user or password/],
    },
    {
      name: 'DATABASE_URL naming a database that does not exist',
      args: ADD,
      env: () => ({ DATABASE_URL: databaseUrl({ database: 'no_such_database' }) }),
      code: 2,
      named: [/Postgres at \S+\/no_such_database \(DATABASE_URL\) has no such database/],
    },
    {
      name: 'DATABASE_CONNECT_TIMEOUT that is not a duration',
      args: ADD,
      env: () => ({ DATABASE_CONNECT_TIMEOUT: 'soon' }),
      code: 2,
      named: [/DATABASE_CONNECT_TIMEOUT: must be a duration/],
    },
    {
      name: 'TEMPORAL_ADDRESS with an invalid port',
      args: ['pause', 'bad-env'],
      env: () => ({ TEMPORAL_ADDRESS: '127.0.0.1:99999' }),
      code: 2,
      named: [/TEMPORAL_ADDRESS: must be host:port with a port from 1 to 65535/],
    },
    {
      name: 'a dead TEMPORAL_ADDRESS',
      args: ['pause', 'bad-env'],
      env: () => ({ TEMPORAL_ADDRESS: `127.0.0.1:${closedPort}` }),
      code: 1,
      named: [
        /Temporal at 127\.0\.0\.1:\d+ \(TEMPORAL_ADDRESS\) did not answer within 1s \(TEMPORAL_CONNECT_TIMEOUT\)/,
      ],
    },
    {
      name: 'TEMPORAL_ADDRESS of a server that accepts TCP and never answers',
      args: ['status', '--json'],
      env: () => ({ TEMPORAL_ADDRESS: silent.address }),
      code: 1,
      named: [/Temporal at 127\.0\.0\.1:\d+ \(TEMPORAL_ADDRESS\) did not answer within 1s/],
    },
    {
      name: 'an unknown TEMPORAL_NAMESPACE',
      args: ['start', '--all'],
      env: () => ({ TEMPORAL_NAMESPACE: 'no-such-namespace' }),
      code: 2,
      named: [/no namespace "no-such-namespace" \(TEMPORAL_NAMESPACE\)/],
    },
  ];

  it.each(cases)('$name: exits $code naming it', async ({ args, env, code, named }) => {
    await expectNothingStored(async () => {
      const result = await cli(args, env());
      expectNamed(result, code, named);
      // Every timeout is 1 s; nothing waits for ever (or for pg's and Temporal's own 10 to 30 s).
      expect(result.ms).toBeLessThan(8_000);
    });
  });
});

describe('the worker with a bad environment', () => {
  const cases: { name: string; env: () => Record<string, string>; named: RegExp[] }[] = [
    { name: 'DATABASE_URL that is not a URL', env: () => ({ DATABASE_URL: 'notaurl' }), named: [/DATABASE_URL/] },
    {
      name: 'TEMPORAL_ADDRESS with an invalid port',
      env: () => ({ TEMPORAL_ADDRESS: 'localhost:0' }),
      named: [/TEMPORAL_ADDRESS: must be host:port/],
    },
    {
      name: 'an unknown TEMPORAL_NAMESPACE',
      env: () => ({ TEMPORAL_NAMESPACE: 'no-such-namespace' }),
      named: [/Temporal at \S+ has no namespace "no-such-namespace" \(TEMPORAL_NAMESPACE\)/],
    },
    {
      name: 'DATABASE_URL with a wrong password',
      env: () => ({ DATABASE_URL: databaseUrl({ password: PASSWORD }) }),
      named: [/Postgres at \S+ \(DATABASE_URL\) rejected the user or password/],
    },
    {
      name: 'ARCHIVER_SECRET_KEYS with a key of 16 bytes',
      env: () => ({ ARCHIVER_SECRET_KEYS: `k1:${Buffer.alloc(16, 7).toString('base64')}` }),
      named: [/ARCHIVER_SECRET_KEYS, entry 1 \(key id k1\): the key must be 32 bytes/],
    },
  ];

  it.each(cases)('$name: exits 2 at once, naming it', async ({ env, named }) => {
    await expectNothingStored(async () => {
      const started = Date.now();
      const worker = spawnWorkerProcess({
        ARCHIVER_DATA_DIR: dataDir,
        TEMPORAL_ADDRESS: temporal.address,
        TEMPORAL_NAMESPACE: 'default',
        DATABASE_URL: database.url,
        ...env(),
      });
      const code = await worker.exited;
      expectNamed({ code, output: worker.output(), ms: Date.now() - started }, 2, named);
      expect(worker.output()).not.toContain('worker started');
    });
  });
});

describe('npm start with a bad environment', () => {
  const cases: { name: string; env: Record<string, string>; named: RegExp[] }[] = [
    {
      name: 'DATABASE_URL=notaurl',
      env: { DATABASE_URL: 'notaurl' },
      named: [/DATABASE_URL: must be a postgres:\/\/ URL/],
    },
    { name: 'MEDIA_PORT=abc', env: { MEDIA_PORT: 'abc' }, named: [/MEDIA_PORT: must be a port from 1 to 65535/] },
    {
      name: 'TEMPORAL_ADDRESS with an invalid port',
      env: { TEMPORAL_ADDRESS: '127.0.0.1:70000' },
      named: [/TEMPORAL_ADDRESS: must be host:port/],
    },
  ];

  it.each(cases)('$name: exits 2 before starting anything, naming it', async ({ env, named }) => {
    await expectNothingStored(async () => {
      // Nothing else set: npm start would otherwise start its embedded stack.
      const result = await run(
        ['start', '--silent'],
        { DATABASE_URL: undefined, TEMPORAL_ADDRESS: undefined, ...env },
        'npm',
      );
      expectNamed(result, 2, named);
      expect(result.output).not.toContain('starting embedded Postgres');
    });
  });
});
