import { randomBytes } from 'node:crypto';
import { testKeyring } from './secret-keys.js';
import { Client, Connection } from '@temporalio/client';
import { defaultPayloadConverter, type DataConverter, type Payload } from '@temporalio/common';
import { bundleWorkflowCode, NativeConnection, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import pg from 'pg';
import { inject } from 'vitest';
import { createPool, dbFromPool, type Db } from '../../db/pool.js';
import { migrate } from '../../db/migrate.js';
import { archiverDataConverter, EncryptionCodec, FAILURE_CONVERTER_PATH } from '../../temporal/payload-codec.js';
import { WORKFLOWS_PATH } from '../../workers/worker.js';
import type { ProcessTestNamespace } from './namespaces.js';

export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(4).toString('hex')}`;
}

export interface TestDatabase {
  url: string;
  pool: pg.Pool;
  db: Db;
  close(): Promise<void>;
}

/** A new, migrated database on the suite's Postgres, so test files never see each other's rows. */
export async function freshDatabase(): Promise<TestDatabase> {
  const adminUrl = inject('postgresUrl');
  const name = uniqueName('archiver_test');
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  await migrate(url.href);
  const pool = createPool(url.href);
  return { url: url.href, pool, db: dbFromPool(pool), close: () => pool.end() };
}

export interface TestTemporal {
  address: string;
  namespace: string;
  connection: NativeConnection;
  client: Client;
  /** A task queue of this file's own, so files sharing the server never take each other's tasks. */
  taskQueue: string;
  close(): Promise<void>;
}

/**
 * Connects to the suite's Temporal server, in `namespace` (see namespaces.ts) or 'default';
 * `address` connects to another server instead, e.g. one a test file started for itself.
 */
export async function connectTemporal(
  namespace: ProcessTestNamespace | 'default' = 'default',
  address: string = inject('temporalAddress'),
): Promise<TestTemporal> {
  const connection = await NativeConnection.connect({ address });
  const clientConnection = await Connection.connect({ address });
  return {
    address,
    namespace,
    connection,
    client: new Client({ connection: clientConnection, namespace, dataConverter: testDataConverter() }),
    taskQueue: uniqueName('archiver-test'),
    close: async () => {
      await clientConnection.close();
      await connection.close();
    },
  };
}

/** The data converter every Archiver client and worker uses, under the suite's keyring (ARCHIVER_SECRET_KEYS). */
export function testDataConverter(): DataConverter {
  return archiverDataConverter(testKeyring());
}

/** A payload of a raw history, opened with the suite's keyring and converted back to its value. */
export async function decodePayload<T>(payload: Payload): Promise<T> {
  const [opened] = await new EncryptionCodec(testKeyring()).decode([payload]);
  return defaultPayloadConverter.fromPayload<T>(opened as Payload);
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
/** The real workflow bundle, built once per test file. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, failureConverterPath: FAILURE_CONVERTER_PATH });
  return bundle;
}

/** Polls until `check` returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  timeoutMs = 30_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`,
      );
    await new Promise((r) => setTimeout(r, 200));
  }
}
