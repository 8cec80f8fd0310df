import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  DEFAULT_MAX_CACHED_WORKFLOWS,
  loadConfig,
  loadDevStackConfig,
  requireDatabaseUrl,
} from '../../workers/config.js';
import { defaultBuildId } from '../../workers/versioning.js';

describe('configuration', () => {
  it('has sensible defaults for everything but the database', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      temporal: { address: '127.0.0.1:7233', namespace: 'default', tls: false },
      databaseUrl: undefined,
      dropboxApiBase: undefined,
      shutdownGraceMs: 30_000,
      maxCachedWorkflows: 1_000,
      logLevel: 'INFO',
      metricsAddress: '127.0.0.1:9464',
    });
    expect(loadConfig({ ARCHIVER_METRICS_ADDRESS: 'off' }).metricsAddress).toBeUndefined();
    expect(() => requireDatabaseUrl(config)).toThrow(/DATABASE_URL is not set/);
  });

  it('reads every variable', () => {
    const config = loadConfig({
      TEMPORAL_ADDRESS: 'temporal.internal:7233',
      TEMPORAL_NAMESPACE: 'archiver',
      TEMPORAL_API_KEY: 'k',
      DATABASE_URL: 'postgresql://a:b@db:5432/archiver',
      DROPBOX_API_BASE: 'http://127.0.0.1:9000',
      ARCHIVER_SHUTDOWN_GRACE: '2m',
      ARCHIVER_MAX_CONCURRENT_ACTIVITIES: '40',
      ARCHIVER_MAX_CACHED_WORKFLOWS: '250',
      ARCHIVER_LOG_LEVEL: 'WARN',
      DROPBOX_APP_KEY: 'app-key',
      DROPBOX_APP_SECRET: 'app-secret',
      ARCHIVER_METRICS_ADDRESS: '0.0.0.0:9100',
      ARCHIVER_ITEM_MAX_ATTEMPTS: '50',
      ARCHIVER_ITEM_MAX_AGE: '7d',
      ARCHIVER_ITEM_RETRY_DELAY: '1m',
      ARCHIVER_SOURCE_TIMEOUT: '10s',
      ARCHIVER_LIVE_WINDOW: '6h',
      ARCHIVER_DROPBOX_TIMEOUT: '2m',
      DATABASE_CONNECT_TIMEOUT: '5s',
      DATABASE_STATEMENT_TIMEOUT: '1m',
      TEMPORAL_CONNECT_TIMEOUT: '1500ms',
      ARCHIVER_INITIAL_RATE: '25',
      ARCHIVER_WORKFLOW_BUNDLE: fileURLToPath(import.meta.url),
      ARCHIVER_WORKER_VERSIONING: 'true',
      ARCHIVER_DEPLOYMENT_NAME: 'archiver-eu',
      ARCHIVER_BUILD_ID: '1.2.0-abc1234',
    });
    expect(config).toEqual({
      temporal: {
        address: 'temporal.internal:7233',
        namespace: 'archiver',
        apiKey: 'k',
        tls: true,
        connectTimeoutMs: 1_500,
      },
      databaseUrl: 'postgresql://a:b@db:5432/archiver',
      databaseTimeouts: { connectTimeoutMs: 5_000, statementTimeoutMs: 60_000 },
      dropboxApiBase: 'http://127.0.0.1:9000',
      dropboxApp: { key: 'app-key', secret: 'app-secret' },
      shutdownGraceMs: 120_000,
      maxConcurrentActivities: 40,
      maxCachedWorkflows: 250,
      logLevel: 'WARN',
      metricsAddress: '0.0.0.0:9100',
      itemRetry: { initialDelayMs: 60_000, maxAttempts: 50, maxAgeMs: 7 * 86_400_000 },
      liveWindowMs: 6 * 3_600_000,
      sourceTimeoutMs: 10_000,
      dropboxTimeoutMs: 120_000,
      initialRatePerSecond: 25,
      workflowBundlePath: fileURLToPath(import.meta.url),
      deploymentName: 'archiver-eu',
      workerVersion: { deploymentName: 'archiver-eu', buildId: '1.2.0-abc1234' },
    });
  });

  it('refuses item retry settings that would never give up or never wait', () => {
    for (const [name, value] of [
      ['ARCHIVER_ITEM_MAX_ATTEMPTS', '0'],
      ['ARCHIVER_ITEM_MAX_ATTEMPTS', 'Infinity'],
      ['ARCHIVER_ITEM_MAX_AGE', '3 days'],
      ['ARCHIVER_SOURCE_TIMEOUT', '-1s'],
      ['ARCHIVER_LIVE_WINDOW', '1 day'],
    ] as const) {
      expect(() => loadConfig({ [name]: value }), `${name}=${value}`).toThrow(new RegExp(name));
    }
  });

  it('names every bad variable at once, without echoing values that may be secrets', () => {
    let error: unknown;
    try {
      loadConfig({
        TEMPORAL_ADDRESS: 'no-port',
        DATABASE_URL: 'mysql://root:hunter2@db/x',
        ARCHIVER_SHUTDOWN_GRACE: 'soon',
        ARCHIVER_LOG_LEVEL: 'LOUD',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    for (const name of ['TEMPORAL_ADDRESS', 'DATABASE_URL', 'ARCHIVER_SHUTDOWN_GRACE', 'ARCHIVER_LOG_LEVEL'])
      expect(message).toContain(name);
    expect(message).not.toContain('hunter2');
  });

  it('caps the workflow cache, so the worker stays small with thousands of idle customers', () => {
    expect(DEFAULT_MAX_CACHED_WORKFLOWS).toBe(1_000);
    for (const bad of ['0', '-5', '2.5', 'lots', '']) {
      expect(() => loadConfig({ ARCHIVER_MAX_CACHED_WORKFLOWS: bad }), bad).toThrow(
        /ARCHIVER_MAX_CACHED_WORKFLOWS: must be a positive whole number/,
      );
    }
  });

  it('bounds every wait on Postgres and Temporal by default', () => {
    expect(loadConfig({})).toMatchObject({
      temporal: { connectTimeoutMs: 10_000 },
      databaseTimeouts: { connectTimeoutMs: 10_000, statementTimeoutMs: 30_000 },
    });
  });

  it('rejects ports outside 1 to 65535, naming the variable', () => {
    for (const [name, value] of [
      ['TEMPORAL_ADDRESS', '127.0.0.1:99999'],
      ['TEMPORAL_ADDRESS', 'localhost:0'],
      ['ARCHIVER_METRICS_ADDRESS', '127.0.0.1:65536'],
    ] as const) {
      expect(() => loadConfig({ [name]: value }), value).toThrow(
        new RegExp(`${name}: must be host:port with a port from 1 to 65535`),
      );
    }
  });

  it("checks npm start's own variables with the same schema", () => {
    expect(loadDevStackConfig({}).mediaPort).toBe(8370);
    expect(loadDevStackConfig({ MEDIA_PORT: '9000' }).mediaPort).toBe(9000);
    for (const bad of ['abc', '0', '70000', '80.5']) {
      expect(() => loadDevStackConfig({ MEDIA_PORT: bad }), bad).toThrow(/MEDIA_PORT: must be a port from 1 to 65535/);
    }
    expect(() => loadDevStackConfig({ DATABASE_URL: 'notaurl', MEDIA_PORT: 'abc' })).toThrow(
      /DATABASE_URL: must be a postgres:\/\/ URL[\s\S]*MEDIA_PORT/,
    );
  });

  it('needs the Dropbox app key and secret together', () => {
    expect(() => loadConfig({ DROPBOX_APP_KEY: 'only-the-key' })).toThrow(
      /DROPBOX_APP_KEY and DROPBOX_APP_SECRET must be set together/,
    );
  });

  it('takes a pre-built workflow bundle only if the file is there', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bundle-config-'));
    const file = join(dir, 'workflow-bundle.js');
    writeFileSync(file, '// bundle');
    expect(loadConfig({}).workflowBundlePath).toBeUndefined();
    expect(loadConfig({ ARCHIVER_WORKFLOW_BUNDLE: file }).workflowBundlePath).toBe(file);
    for (const bad of [join(dir, 'missing.js'), dir, '']) {
      expect(() => loadConfig({ ARCHIVER_WORKFLOW_BUNDLE: bad }), bad).toThrow(
        /ARCHIVER_WORKFLOW_BUNDLE: must be the path of a workflow bundle file: write one with `npm run bundle`/,
      );
    }
  });

  it("takes the initial rate of a customer with no learned limit, within the controller's bounds", () => {
    expect(loadConfig({}).initialRatePerSecond).toBe(10);
    expect(loadConfig({ ARCHIVER_INITIAL_RATE: '2.5' }).initialRatePerSecond).toBe(2.5);
    for (const bad of ['0', '-1', 'fast', 'Infinity', '5000']) {
      expect(() => loadConfig({ ARCHIVER_INITIAL_RATE: bad }), bad).toThrow(
        /ARCHIVER_INITIAL_RATE: must be uploads per second from 0.2 to 2000, e.g. 10/,
      );
    }
  });

  it('declares a Worker Deployment version only when versioning is on, with a build id from the checkout by default', () => {
    expect(loadConfig({})).toMatchObject({ deploymentName: 'archiver', workerVersion: undefined });
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', timeout: 5_000 }).trim();
    expect(loadConfig({ ARCHIVER_WORKER_VERSIONING: 'true' }).workerVersion).toEqual({
      deploymentName: 'archiver',
      buildId: `${version}-${commit}`,
    });
    // An image built without the build argument sets it empty: the same as unset.
    expect(loadConfig({ ARCHIVER_WORKER_VERSIONING: 'true', ARCHIVER_BUILD_ID: '' }).workerVersion?.buildId).toBe(
      `${version}-${commit}`,
    );
    for (const [name, value, message] of [
      ['ARCHIVER_WORKER_VERSIONING', 'yes', 'must be true or false'],
      ['ARCHIVER_DEPLOYMENT_NAME', 'archiver.eu', "must be 1-100 letters, digits, '-' or '_' (no dots)"],
      ['ARCHIVER_DEPLOYMENT_NAME', '', "must be 1-100 letters, digits, '-' or '_' (no dots)"],
      ['ARCHIVER_BUILD_ID', 'has space', "must be 1-100 letters, digits, '.', '_', '+' or '-'"],
      [
        'ARCHIVER_BUILD_ID',
        '-1.0',
        "must be 1-100 letters, digits, '.', '_', '+' or '-', starting with a letter or digit",
      ],
      ['ARCHIVER_BUILD_ID', 'x'.repeat(101), 'must be 1-100'],
    ] as const) {
      expect(() => loadConfig({ [name]: value }), `${name}=${value}`).toThrow(`${name}: ${message}`);
    }
  });

  it('falls back to the package version alone where there is no git checkout, as in a Docker image', () => {
    const dir = mkdtempSync(join(tmpdir(), 'build-id-'));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ version: '3.4.5' }));
    expect(defaultBuildId(dir)).toBe('3.4.5');
  });
});
