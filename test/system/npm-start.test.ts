import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort } from '../../dev/ports.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let dataDir: string;

beforeAll(async () => {
  // Mode 700, like a fresh clone in `mktemp -d`: as root, npm start must let the postgres user in by itself.
  dataDir = await mkdtemp(join(tmpdir(), 'archiver-start-'));
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

/** `npm start -- …` exactly as a user runs it, with its state in a directory of this test's own. */
async function npmStart(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ARCHIVER_DATA_DIR: dataDir,
    MEDIA_PORT: String(await freePort()),
    ARCHIVER_METRICS_ADDRESS: `127.0.0.1:${await freePort()}`,
  };
  // No keyring either: npm start makes its development key.
  for (const name of [
    'DATABASE_URL',
    'TEMPORAL_ADDRESS',
    'DROPBOX_API_BASE',
    'ARCHIVER_SECRET_KEYS',
    'ARCHIVER_SECRET_KEYS_FILE',
  ])
    delete env[name];
  try {
    const { stdout, stderr } = await promisify(execFile)('npm', ['start', '--', ...args], {
      cwd: ROOT,
      env,
      timeout: 240_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

it('boots the embedded stack, drains the seeded demo, and resumes from its data on the next run', async () => {
  const first = await npmStart(['--customers', '2', '--items', '25', '--rate', '50', '--until-drained']);
  expect(first.stderr).not.toMatch(/Error/);
  expect(first.code).toBe(0);
  expect(first.stdout).toContain('seeding 2 demo customers × 25 items');
  expect(first.stdout).toMatch(/Temporal Web UI: http:\/\/127\.0\.0\.1:\d+\/namespaces\/default\/workflows/);
  expect(first.stdout).toMatch(/codec server \(the Web UI decrypts payloads through it\): http:\/\/127\.0\.0\.1:\d+$/m);
  expect(first.stdout).toMatch(/^archived 50 items for 2 customers in \d+(\.\d)?s \(429 responses: \d+\)$/m);
  const keyFile = join(dataDir, 'secret-keys');
  expect(first.stdout).toContain(
    `ARCHIVER_SECRET_KEYS is not set: Dropbox tokens are sealed with the development key made now in ${keyFile} (ARCHIVER_SECRET_KEYS_FILE)`,
  );
  expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
  const key = (await readFile(keyFile, 'utf8')).split('\n').find((line) => line.startsWith('dev:')) ?? '';
  expect(key).toMatch(/^dev:[A-Za-z0-9+/]{43}=$/);
  expect(first.stdout + first.stderr).not.toContain(key.slice(4));
  // The CLI in another terminal finds the key through the stack file, which names the file, not the key.
  const stackFile = await readFile(join(dataDir, 'stack.env'), 'utf8');
  expect(stackFile).toContain(`ARCHIVER_SECRET_KEYS_FILE=${keyFile}`);
  expect(stackFile).not.toContain(key.slice(4));

  const second = await npmStart(['--until-drained']);
  expect(second.code).toBe(0);
  expect(second.stdout).toContain('resuming 2 customers');
  expect(second.stdout).toContain(`the development key kept in ${join(dataDir, 'secret-keys')}`);
  expect(second.stdout).not.toContain('seeding');
  expect(second.stdout).toMatch(/^archived 50 items for 2 customers in/m);
}, 300_000);

it('rejects bad options with a clear message', async () => {
  const bad = await npmStart(['--items', 'lots']);
  expect(bad.code).not.toBe(0);
  expect(bad.stderr).toContain('--items must be a positive integer, got "lots"');
});
