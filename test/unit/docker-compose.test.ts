import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../workers/config.js';

/** There is no Docker engine here, so the compose file is checked by parsing it. */
const compose = parse(readFileSync(new URL('../../docker-compose.yml', import.meta.url), 'utf8')) as {
  services: Record<
    string,
    {
      image?: string;
      build?: string;
      environment?: Record<string, string>;
      depends_on?: unknown;
      stop_grace_period?: string;
      volumes?: string[];
    }
  >;
};

describe('docker-compose.yml', () => {
  it('runs Postgres, Temporal on Postgres, the Web UI and Archiver workers', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['postgres', 'temporal', 'temporal-ui', 'worker']);
    expect(compose.services.temporal?.environment?.DB).toMatch(/^postgres/);
    expect(compose.services.worker?.build).toBe('.');
  });

  it("gives the worker a configuration Archiver accepts, pointing at the stack's own services", () => {
    const env = compose.services.worker?.environment ?? {};
    const config = loadConfig(env);
    expect(config.temporal.address).toBe('temporal:7233');
    expect(new URL(config.databaseUrl ?? '').hostname).toBe('postgres');
    // Without DROPBOX_API_BASE the worker talks to the real Dropbox.
    expect(config.dropboxApiBase).toBeUndefined();
  });

  it('lets in-flight uploads finish on shutdown: Docker waits longer than the worker grace time', () => {
    const grace = loadConfig(compose.services.worker?.environment ?? {}).shutdownGraceMs;
    expect(Number.parseInt(compose.services.worker?.stop_grace_period ?? '0', 10) * 1000).toBeGreaterThan(grace);
  });

  it("turns on Temporal's task-queue fairness, which Archiver's fairness keys rely on", () => {
    const temporal = compose.services.temporal;
    const path = temporal?.environment?.DYNAMIC_CONFIG_FILE_PATH;
    const mount = temporal?.volumes?.find((v) => v.split(':')[1] === path);
    expect(mount).toBeDefined();
    const file = parse(
      readFileSync(new URL(`../../${(mount ?? '').split(':')[0] ?? ''}`, import.meta.url), 'utf8'),
    ) as Record<string, Array<{ value: unknown }>>;
    expect(file['matching.enableFairness']).toEqual([{ value: true }]);
  });
});
